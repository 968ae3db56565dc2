"""The fake as a child process (`fake_comfyui.process`), as benchmarks and process tests use it."""

from __future__ import annotations

import json
import urllib.request

from fake_comfyui.process import FakeProcess


def test_start_talk_to_and_stop_a_fake_process() -> None:
    fake = FakeProcess.start(0.0, name="child", paused=True)
    try:
        assert fake.host_port.startswith("127.0.0.1:") and fake.url == f"http://{fake.host_port}"
        with urllib.request.urlopen(f"{fake.url}/system_stats", timeout=5) as resp:
            assert json.load(resp)["system"]["fake_name"] == "child"
        assert fake.stats()["prompts_received"] == 0
        fake.control("service_time", seconds=0.5)
        assert fake.history("no-such-prompt") is None
    finally:
        fake.stop()
    assert fake.popen.returncode == 0  # SIGTERM: a clean exit
    fake.stop()  # harmless the second time
