"""The batch runner's hold on a job's event stream, which is silent while the job waits its turn."""

from __future__ import annotations

import io

from rich.console import Console

from comfy_gateway.client.batch import BatchOptions, Outcome, run_batch
from comfy_gateway.client.http import GatewayClient
from comfy_gateway.client.inputs import plan
from comfy_gateway.client.progress import BatchProgress
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png
from support.keys import KEYS, auth, write_keys


async def test_a_job_queued_longer_than_the_read_timeout_is_still_followed_to_its_end(fake_servers, tmp_path):
    fakes = await fake_servers(1, service_time=1.5)
    for n in range(2):
        (tmp_path / f"in-{n}.png").write_bytes(png())
    items = plan(sorted(tmp_path.glob("in-*.png")), tmp_path / "out", "upscale-image", "png")
    settings = gateway_settings(tmp_path / "gw", hosts_of(fakes), max_jobs_per_instance=1, max_concurrent_jobs=1)
    console = Console(file=io.StringIO())
    async with running_gateway(settings) as gw, GatewayClient(gw.url, timeout_s=0.4) as client:
        with BatchProgress(console, len(items)) as progress:
            results = await run_batch(client, items, BatchOptions("upscale-image", {}, concurrency=2), progress)
    # the second job waited ~1.5 s without a word from its stream: each silent read timed out and reopened it
    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.DONE], [r.detail for r in results]
    assert all(item.output.exists() for item in items)


async def test_an_input_refused_over_a_quota_is_sent_again_when_the_gateway_says(fake_servers, tmp_path):
    fakes = await fake_servers(1, service_time=1.0)
    (tmp_path / "in.png").write_bytes(png())
    items = plan([tmp_path / "in.png"], tmp_path / "out", "upscale-image", "png")
    keys = write_keys(tmp_path / "keys.toml", bob={"max_queued_jobs": 1})
    settings = gateway_settings(tmp_path / "gw", hosts_of(fakes), api_keys_file=keys, max_jobs_per_instance=1,
                                max_concurrent_jobs=1)
    async with running_gateway(settings) as gw, GatewayClient(gw.url, api_key=KEYS["bob"]) as client:
        for _ in range(2):  # one running, one queued: bob's queue is at its limit
            await gw.client.post("/api/async/upscale-image", files={"imageFile": ("a.png", png(), "image/png")},
                                 headers=auth("bob"))
        with BatchProgress(Console(file=io.StringIO()), len(items)) as progress:
            results = await run_batch(client, items, BatchOptions("upscale-image", {}, concurrency=1), progress)
        refused = gw.gateway.prom.registry.get_sample_value(
            "comfy_gateway_http_requests_total", {"method": "POST", "route": "/api/run/{workflow}", "status": "429"})
    assert [r.outcome for r in results] == [Outcome.DONE], [r.detail for r in results]
    assert refused is not None and refused >= 1  # refused first (429 with Retry-After), taken when asked again


async def test_a_job_that_fails_on_its_server_is_reported_with_the_reason(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    fakes[0].fail_next(1, "out of memory on the GPU")
    (tmp_path / "in.png").write_bytes(png())
    items = plan([tmp_path / "in.png"], tmp_path / "out", "upscale-image", "png")
    async with running_gateway(gateway_settings(tmp_path / "gw", hosts_of(fakes))) as gw, \
            GatewayClient(gw.url) as client:
        with BatchProgress(Console(file=io.StringIO()), len(items)) as progress:
            (result,) = await run_batch(client, items, BatchOptions("upscale-image", {}, concurrency=1), progress)
    assert result.outcome is Outcome.FAILED and "out of memory on the GPU" in result.detail, result.detail
    assert not items[0].output.exists()
