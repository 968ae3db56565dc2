"""The Comfy SDK against the gateway: the flows its README shows, over real sockets, two fake servers."""

from __future__ import annotations

import asyncio

import pytest
from comfy_sdk import AsyncComfy, AsyncJob, IdempotencyKeyReuse, OutputReady, Progress, StatusChange

from comfy_gateway.access import ANONYMOUS
from support.blobs import stored_blobs
from support.gateway import RunningGateway
from support.images import decode, png
from support.v2 import LOADER, SAVE, fake_holding, input_names, invert_graph
from support.waiting import eventually


def _is_input(name: str) -> bool:
    return name.startswith("cg_")


async def _submit(sdk: AsyncComfy) -> AsyncJob:
    workflow = sdk.workflows.from_json(invert_graph())
    workflow.set_input(LOADER, "image", sdk.assets.from_bytes(png(), filename="in.png"))
    return await sdk.submit(workflow)


async def _running_job(sdk: AsyncComfy, v2gw: RunningGateway, service_time: float) -> AsyncJob:
    """A job submitted through the SDK, once the SDK sees it running (each node takes `service_time`)."""
    for fake in v2gw.fakes:
        fake.set_service_time(service_time)
    job = await _submit(sdk)

    async def running() -> bool:
        return (await job.refresh()).status == "running"

    await eventually(running, timeout=10)
    # Running for the gateway from the moment a server is chosen; wait until the prompt is there too.
    await eventually(lambda: sum(f.stats()["prompts_received"] for f in v2gw.fakes) == 1, timeout=10)
    return job


async def test_run_a_workflow_with_an_uploaded_input_and_save_its_outputs(sdk: AsyncComfy, v2gw: RunningGateway,
                                                                           tmp_path) -> None:
    source = png(32, 24, color=(10, 200, 60))
    asset = sdk.assets.from_bytes(source, filename="photo.png")
    workflow = sdk.workflows.from_json(invert_graph())
    workflow.set_input(LOADER, "image", asset)

    job = await sdk.run(workflow)

    assert job.status == "succeeded"
    [output] = job.get_outputs(SAVE)
    assert (output.type, output.content_type, output.job_id) == ("image", "image/png", job.id)
    written = await output.to_file(tmp_path / output.name)
    result = decode(written.read_bytes())
    assert result.size == (32, 24)
    assert result.convert("RGB").getpixel((5, 5)) == (245, 55, 195)  # the input, inverted
    assert await output.to_bytes(range=(0, 7)) == b"\x89PNG\r\n\x1a\n"
    # The input went to the one server that ran the job, no other.
    ran_on = (await v2gw.gateway.service.get(job.id, ANONYMOUS)).instance
    holders = [f.host_port for f in fake_holding(v2gw.fakes, next(iter(input_names(v2gw.fakes, _is_input))))]
    assert holders == [ran_on]


async def test_progress_streams_to_the_end(sdk: AsyncComfy, v2gw: RunningGateway) -> None:
    for fake in v2gw.fakes:
        fake.set_service_time(1.2)
    job = await _submit(sdk)

    seen = [event async for event in job.events()]

    statuses = [e.status for e in seen if isinstance(e, StatusChange)]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded" and "running" in statuses
    values = [e.value for e in seen if isinstance(e, Progress)]
    assert len(values) >= 2 and values == sorted(values) and 0 < values[-1] <= 1
    [ready] = [e for e in seen if isinstance(e, OutputReady)]
    assert ready.output.node_id == SAVE and (await ready.output.to_bytes()).startswith(b"\x89PNG")
    assert seen.index(ready) < len(seen) - 1  # the output comes before the final status


async def test_cancel_a_running_job(sdk: AsyncComfy, v2gw: RunningGateway) -> None:
    job = await _running_job(sdk, v2gw, service_time=20)
    await job.cancel()

    assert job.status == "canceling"  # the contract's running -> canceling -> canceled; not terminal for the SDK
    assert (await job.wait(timeout=5)).status == "canceled"
    statuses = [e.status async for e in job.events() if isinstance(e, StatusChange)]
    assert statuses == ["queued", "running", "canceling", "canceled"]
    stored = await v2gw.gateway.service.get(job.id, ANONYMOUS)
    fake = next(f for f in v2gw.fakes if f.host_port == stored.instance)

    def interrupted() -> bool:  # the prompt was stopped on its server, not left to run
        stats = fake.stats()
        return stats.get("interrupted", 0) == 1 and stats["queue_depth"] == 0 and not stats.get("completed")

    await eventually(interrupted, timeout=5)


async def test_the_same_idempotency_key_twice_gives_one_job_and_a_422(sdk: AsyncComfy, v2gw: RunningGateway) -> None:
    workflow = sdk.workflows.from_json(invert_graph())
    workflow.set_input(LOADER, "image", sdk.assets.from_bytes(png(), filename="in.png"))

    first = await sdk.submit(workflow, idempotency_key="order-7", metadata={"client": "acme"})
    with pytest.raises(IdempotencyKeyReuse) as refused:
        await sdk.submit(workflow, idempotency_key="order-7", metadata={"client": "acme"})

    assert refused.value.http_status == 422
    assert [s.id async for s in sdk.list_jobs()] == [first.id]
    assert [s.metadata async for s in sdk.list_jobs(metadata={"client": "acme"})] == [{"client": "acme"}]
    assert [s.id async for s in sdk.list_jobs(metadata={"client": "other"})] == []
    assert (await first.result()).status == "succeeded"


async def test_an_asset_uploaded_twice_is_stored_once(sdk: AsyncComfy, v2gw: RunningGateway, tmp_path) -> None:
    data = png(40, 40, color=(1, 2, 3))
    first = sdk.assets.from_bytes(data, filename="a.png")
    second = sdk.assets.from_bytes(data, filename="b.png")

    await first.commit()
    await second.commit()

    assert first.id != second.id and first.hash == second.hash
    assert (first.created_new, second.created_new) == (True, False)
    stored = {key: data for key, data in stored_blobs(tmp_path / "blobs").items() if key.startswith("cas/")}
    assert stored == {f"cas/{first.hash.replace(':', '-')}": data}


async def test_a_job_whose_server_dies_mid_run_completes_on_the_other(sdk: AsyncComfy, v2gw: RunningGateway) -> None:
    job = await _running_job(sdk, v2gw, service_time=1.5)
    first = (await v2gw.gateway.service.get(job.id, ANONYMOUS)).instance
    doomed = next(f for f in v2gw.fakes if f.host_port == first)
    await doomed.stop()

    done = await asyncio.wait_for(job.result(), timeout=30)

    stored = await v2gw.gateway.service.get(job.id, ANONYMOUS)
    assert done.status == "succeeded" and stored.instance != first and stored.attempt == 2
    assert len(done.get_outputs(SAVE)) == 1
    # Uploaded again to the server the retry landed on.
    survivor = next(f for f in v2gw.fakes if f is not doomed)
    assert input_names([survivor], _is_input)
