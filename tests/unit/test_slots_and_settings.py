"""Local slot accounting, settings parsing, and the CLI's refusal of bad configuration."""

from __future__ import annotations

import pytest

from comfy_gateway.cli import load_settings
from comfy_gateway.dispatch.slots import LocalSlots
from comfy_gateway.settings import Settings


async def test_local_slots_respect_both_limits_and_pick_least_loaded():
    slots = LocalSlots(per_instance=2, total=3)
    first, second = await slots.acquire(["a", "b"]), await slots.acquire(["a", "b"])
    assert {first, second} == {"a", "b"}  # the idle server is preferred over the busy one
    third = await slots.acquire(["a", "b"])
    assert third in ("a", "b")
    assert await slots.acquire(["a", "b"]) is None  # the global limit (3) is reached
    assert await slots.usage() == {third: 2, ({"a", "b"} - {third}).pop(): 1}
    await slots.release(third)
    assert await slots.usage() == {"a": 1, "b": 1}
    assert await slots.acquire([third]) == third


async def test_local_slots_never_exceed_per_instance():
    slots = LocalSlots(per_instance=1, total=10)
    assert await slots.acquire(["a"]) == "a"
    assert await slots.acquire(["a"]) is None
    await slots.adopt("dead-worker", "a")  # a prompt that is there anyway is counted
    assert await slots.usage() == {"a": 2}


def test_hosts_from_any_of_the_three_forms():
    assert Settings(_env_file=None, comfyui_hosts="h1:1, h2:2 ,h1:1").instance_hosts == ("h1:1", "h2:2")
    assert Settings(_env_file=None, comfyui_host_1="a:1", comfyui_host_2="b:2").instance_hosts == ("a:1", "b:2")
    assert Settings(_env_file=None, comfyui_host="http://c:3/").instance_hosts == ("c:3",)


def test_env_file_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("MAX_JOBS_PER_INSTANCE=5\nJOB_TIMEOUT=1234\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert (settings.max_jobs_per_instance, settings.job_timeout) == (5, 1234)


@pytest.mark.parametrize(("name", "value"), [
    ("MAX_JOBS_PER_INSTANCE", "0"), ("PORT", "http"), ("COMFYUI_HOSTS", "no-port-here"), ("LOG_LEVEL", "loud"),
])
def test_a_bad_value_stops_start_up_naming_the_variable(monkeypatch, capsys, tmp_path, name, value):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stop:
        load_settings()
    assert stop.value.code == 2
    assert name in capsys.readouterr().err
