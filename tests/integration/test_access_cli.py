"""`comfy-gateway serve` and API keys: no open gateway on a public address by accident, and the
keys file read again on SIGHUP (a broken one leaves the keys in force)."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx

from support.keys import KEYS, write_keys
from support.processes import VENV_BIN, free_port, gateway_env, processes, start_fake, start_gateway


def test_serve_refuses_a_public_address_without_keys(tmp_path):
    env = gateway_env(tmp_path, "127.0.0.1:9", free_port(), host="0.0.0.0")
    done = subprocess.run([str(VENV_BIN / "comfy-gateway"), "serve"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    assert "HOST=0.0.0.0" in done.stderr and "API_KEYS_FILE" in done.stderr and "ALLOW_INSECURE_BIND" in done.stderr


def test_serve_refuses_a_broken_keys_file(tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nname = "x"\nrole = "user"\n')  # no key at all
    env = gateway_env(tmp_path, "127.0.0.1:9", free_port(), api_keys_file=keys)
    done = subprocess.run([str(VENV_BIN / "comfy-gateway"), "serve"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "API_KEYS_FILE" in done.stderr and "key_sha256" in done.stderr


def _status_within(url: str, key: str, wanted: int, seconds: float = 10.0) -> int:
    deadline = time.monotonic() + seconds
    while True:
        code = httpx.get(f"{url}/api/workflows", headers={"X-API-Key": key}, timeout=5).status_code
        if code == wanted or time.monotonic() > deadline:
            return code
        time.sleep(0.05)


def test_sighup_reloads_the_keys_file(tmp_path):
    keys = write_keys(tmp_path / "keys.toml")
    with processes() as procs:
        fake = start_fake()
        procs.append(fake)
        gw = start_gateway(tmp_path / "data", fake.host_port, api_keys_file=keys, host="0.0.0.0")
        procs.append(gw)
        assert _status_within(gw.url, KEYS["bob"], 200) == 200
        keys.write_text(keys.read_text().replace(KEYS["bob"], "bob-new-key-0123456789"))
        gw.signal(signal.SIGHUP)
        assert _status_within(gw.url, "bob-new-key-0123456789", 200) == 200
        assert _status_within(gw.url, KEYS["bob"], 401) == 401
        keys.write_text("not toml [[[")
        gw.signal(signal.SIGHUP)
        time.sleep(0.5)  # nothing to wait for: the old keys simply stay
        assert _status_within(gw.url, "bob-new-key-0123456789", 200, seconds=0) == 200
        assert gw.alive()
