"""JSON logs of a real gateway: request ids on every line a request causes, job fields, error.log, rotation."""

from __future__ import annotations

import logging
import logging.handlers
import re

from comfy_gateway.observability.logging import get_logger, installed_writers
from observability.helpers import REMOVE_BG, UPSCALE, log_lines, run_job, steer_to
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
IMAGE = {"imageFile": ("a.png", png(16, 16), "image/png")}


async def test_a_request_id_is_echoed_and_on_every_line_the_request_causes(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    settings = gateway_settings(tmp_path, hosts_of(fakes))
    async with running_gateway(settings) as gw:
        resp = await gw.client.post(f"/api/{UPSCALE}", files=IMAGE,
                                    headers={"X-Request-ID": "test-abc-123", "User-Agent": "obs-test/1.0"})
        opened = await gw.client.post(f"/api/circuit-breakers/{fakes[0].host_port}/open",
                                      headers={"X-Request-ID": "test-breaker-7"})
        odd = await gw.client.get("/status", headers={"X-Request-ID": "not sane; drop table"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Request-ID"] == "test-abc-123"
    assert opened.headers["X-Request-ID"] == "test-breaker-7"
    new_id = odd.headers["X-Request-ID"]
    assert new_id != "not sane; drop table" and re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", new_id)

    lines = log_lines(settings.logs_dir / "combined.log")
    [access] = [line for line in lines
                if line.get("request_id") == "test-abc-123" and line["message"] == "HTTP request"]
    assert access["level"] == "info"
    assert access["method"] == "POST" and access["path"] == f"/api/{UPSCALE}" and access["status"] == 200
    assert access["duration_ms"] > 0
    assert access["response_size"] == len(resp.content)
    assert access["user_agent"] == "obs-test/1.0"
    assert access["client"] == "127.0.0.1"
    assert access["service"] == "comfy-gateway" and ISO_MS.fullmatch(access["timestamp"])
    # The job the request caused runs in the dispatcher's task, and its lines carry the id too.
    job_messages = {line["message"] for line in lines
                    if line.get("request_id") == "test-abc-123" and line.get("component") == "job-processor"}
    assert job_messages == {"Job started", "Job completed successfully"}

    # A line logged deep inside the request (not the access line) carries the id too.
    breaker_lines = [line for line in lines if line.get("request_id") == "test-breaker-7"]
    assert {line["message"] for line in breaker_lines} == {"Circuit breaker changed", "HTTP request"}
    [changed] = [line for line in breaker_lines if line["message"] == "Circuit breaker changed"]
    assert changed["instance"] == fakes[0].host_port and changed["new"] == "open"

    [replaced] = [line for line in lines if line.get("request_id") == new_id]
    assert replaced["path"] == "/status"
    assert not any("drop table" in str(line.get("request_id")) for line in lines)


async def test_job_lines_carry_job_type_instance_and_prompt(fake_servers, tmp_path):
    fakes = await fake_servers(1, service_time=0.02)
    fake = fakes[0]
    settings = gateway_settings(tmp_path, hosts_of(fakes))
    async with running_gateway(settings) as gw:
        ok_id = await run_job(gw, UPSCALE)
        fake.fail_next(1, message="no background here")
        failed_id = await run_job(gw, REMOVE_BG, "failed")
        ok_info = (await gw.client.get(f"/api/jobs/{ok_id}/info")).json()
        failed_info = (await gw.client.get(f"/api/jobs/{failed_id}/info")).json()

    lines = log_lines(settings.logs_dir / "combined.log")
    [done] = [line for line in lines if line["message"] == "Job completed successfully"]
    assert done["component"] == "job-processor" and done["level"] == "info"
    assert done["service"] == "comfy-gateway" and ISO_MS.fullmatch(done["timestamp"])
    assert (done["jobId"], done["jobType"], done["instance"]) == (ok_id, UPSCALE, fake.host_port)
    assert done["promptId"] == ok_info["prompt_id"] and done["promptId"]
    assert isinstance(done["processingDuration"], int) and done["processingDuration"] > 0

    [failed] = [line for line in lines if line["message"] == "Job failed"]
    assert (failed["jobId"], failed["jobType"], failed["instance"]) == (failed_id, REMOVE_BG, fake.host_port)
    assert failed["promptId"] == failed_info["prompt_id"] and failed["promptId"]
    assert failed["error"] == "no background here" and failed["level"] == "warn"

    started = [line for line in lines if line["message"] == "Job started"]
    assert [(line["jobId"], line["jobType"], line["instance"]) for line in started] == [
        (ok_id, UPSCALE, fake.host_port), (failed_id, REMOVE_BG, fake.host_port)]


async def test_job_completed_line_carries_the_result_size(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes))
    async with running_gateway(settings) as gw:
        job_id = await run_job(gw, UPSCALE)
        info = (await gw.client.get(f"/api/jobs/{job_id}/info")).json()
    [done] = [line for line in log_lines(settings.logs_dir / "combined.log")
              if line["message"] == "Job completed successfully"]
    assert done["resultSize"] == info["result"]["size_bytes"]


async def test_error_log_holds_only_errors(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes))
    async with running_gateway(settings) as gw:
        await run_job(gw, UPSCALE)
        await steer_to(gw, fakes[0], fakes)  # closed: nothing logged at error level so far
        await gw.client.post(f"/api/circuit-breakers/{fakes[0].host_port}/open")  # a warning
        refused = await gw.client.post(f"/api/{UPSCALE}", files=IMAGE, headers={"X-Request-ID": "refused-1"})
        probe = await gw.client.get("/health", headers={"X-Request-ID": "probe-1"})
    assert refused.status_code == 503
    assert probe.status_code == 503  # the gateway answers the probe correctly: no error of its own

    errors = log_lines(settings.logs_dir / "error.log")
    assert errors, "error.log is empty"
    assert {line["level"] for line in errors} == {"error"}
    assert any(line.get("request_id") == "refused-1" and line["status"] == 503 for line in errors)
    combined = log_lines(settings.logs_dir / "combined.log")
    assert {"info", "warn", "error"} <= {line["level"] for line in combined}
    assert [line for line in combined if line["level"] == "error"] == errors
    [probe_line] = [line for line in combined if line.get("request_id") == "probe-1"]
    assert probe_line["status"] == 503 and probe_line["level"] == "warn"


async def test_log_level_is_honoured(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes), log_level="warn")
    async with running_gateway(settings) as gw:
        await run_job(gw, UPSCALE)
        await gw.client.post(f"/api/circuit-breakers/{fakes[0].host_port}/open")
    levels = [line["level"] for line in log_lines(settings.logs_dir / "combined.log")]
    assert "warn" in levels
    assert set(levels) <= {"warn", "error", "critical"}


async def test_log_files_rotate_at_five_megabytes_keeping_five(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes))
    logs = settings.logs_dir
    async with running_gateway(settings):
        ours = {h.get_name(): h for h in installed_writers()}
        for name in ("combined", "error"):
            handler = ours[f"comfy_gateway.{name}"]
            assert isinstance(handler, logging.handlers.RotatingFileHandler)
            assert handler.baseFilename == str(logs / f"{name}.log")
            assert (handler.maxBytes, handler.backupCount) == (5 * 1024 * 1024, 5)
        filler = get_logger("filler")
        for n in range(60):  # about 6 MB
            filler.info("filler line", n=n, pad="x" * 100_000)
    assert (logs / "combined.log.1").exists()
    assert not (logs / "error.log.1").exists()
    for path in (logs / "combined.log", logs / "combined.log.1"):
        assert path.stat().st_size <= 5 * 1024 * 1024
        assert all(isinstance(line, dict) for line in log_lines(path))  # whole JSON lines on both sides
    fillers = [line["n"] for path in (logs / "combined.log.1", logs / "combined.log")
               for line in log_lines(path) if line["message"] == "filler line"]
    assert fillers == list(range(60))
