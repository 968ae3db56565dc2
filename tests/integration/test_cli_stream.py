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
