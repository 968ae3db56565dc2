"""deploy/Dockerfile: its build stage's RUN steps, run as written in a fresh virtualenv.

No container runtime here, so the steps run on this machine: the build context is copied as the
COPY lines say, /opt/venv becomes a temporary directory, and ENV applies as in the image."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def test_the_image_is_two_stages_and_runs_as_an_unprivileged_user():
    build, final = stages()
    assert build[0][1].startswith("python:3.12-slim") and final[0][1].startswith("python:3.12-slim")
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] not in ("0", "root")
    assert any(word == "RUN" and "useradd" in args and f"--uid {users[-1]}" in args for word, args in final)
    assert [args for word, args in final if word == "COPY"] == ["--from=build /opt/venv /opt/venv"]
    assert '"comfy-gateway", "serve"' in dict(final)["CMD"]


@pytest.mark.slow
def test_the_build_steps_install_a_working_gateway_in_a_clean_venv(tmp_path):
    build = stages()[0]
    context = tmp_path / "context"
    venv = tmp_path / "venv"
    context.mkdir()
    for word, args in build:
        if word == "COPY":
            *sources, target = shlex.split(args)
            for source in sources:
                dest = context / target / Path(source).name if target.endswith("/") else context / target
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
                else:
                    shutil.copy2(ROOT / source, dest)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python").symlink_to(shutil.which("python3") or sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{shim}{os.pathsep}/usr/bin{os.pathsep}/bin"
    for word, args in build:
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    runs = [args.replace("/opt/venv", str(venv)) for word, args in build if word == "RUN"]
    assert runs and all("pip" in run for run in runs)
    for run in runs:
        done = subprocess.run(["bash", "-ec", run], cwd=context, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{run}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    gateway = subprocess.run([str(venv / "bin" / "comfy-gateway"), "--help"], capture_output=True, text=True,
                             timeout=60)
    assert gateway.returncode == 0 and "serve" in gateway.stdout
    fake = subprocess.run([str(venv / "bin" / "python"), "-m", "fake_comfyui", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert fake.returncode == 0 and "--port" in fake.stdout
    # Installed as a package (not the work tree): the venv runs without the source checkout.
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import comfy_gateway; print(comfy_gateway.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert where.stdout.startswith(str(venv))
