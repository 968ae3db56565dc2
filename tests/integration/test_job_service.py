"""The job service's promises, through a real gateway: waits that stop when their caller stops,
withdraws that never touch a running job, answers without exception text, streams without polling."""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest

from comfy_gateway.access import ANONYMOUS
from comfy_gateway.app import create_app
from comfy_gateway.jobs.model import JobState
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png
from support.store_reads import counted_reads
from support.tally import submit
from support.waiting import eventually

IMAGE = {"imageFile": ("a.png", png(16, 16), "image/png")}


async def test_withdraw_never_fails_a_job_that_already_runs(gw):
    for other in gw.fakes:
        other.pause()
    job_id = await submit(gw.client)
    await eventually(lambda: sum(f.stats()["queue_depth"] for f in gw.fakes) == 1, what="the prompt at a server")
    job = await gw.service.withdraw(job_id)
    assert job.state is JobState.PROCESSING and job.error is None
    for other in gw.fakes:
        other.resume()
    assert (await gw.wait_job(job_id))["status"] == "completed"  # its prompt ran on, and counted


async def test_a_sync_wait_stops_when_its_caller_times_out(gw):
    for fake in gw.fakes:
        fake.set_service_time(30.0)
    job_id = await submit(gw.client)
    events = gw.gateway.events
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await gw.service.wait_sync(job_id)
    assert events.subscribers(job_id) == 0
    assert (await gw.service.get(job_id, ANONYMOUS)).state is not JobState.FAILED


async def test_a_sync_request_whose_client_gives_up_stops_waiting(gw):
    for fake in gw.fakes:
        fake.set_service_time(30.0)
    async with httpx.AsyncClient(base_url=gw.url, timeout=httpx.Timeout(1.0)) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post("/api/upscale-image", files=IMAGE)
    [job] = (await gw.client.get("/api/jobs/list")).json()["jobs"]
    events = gw.gateway.events
    # The gateway hears the client leave and drops its wait; the job itself goes on.
    await eventually(lambda: events.subscribers(job["job_id"]) == 0, what="the sync wait to stop")
    assert (await gw.client.get(f"/api/jobs/{job['job_id']}/status")).json()["status"] == "processing"


async def test_an_unexpected_error_is_answered_without_its_text(gw):
    fake = gw.fakes[0]
    for other in gw.fakes[1:]:
        await gw.client.post(f"/api/circuit-breakers/{other.host_port}/open")
    await gw.client.post(f"/api/circuit-breakers/{fake.host_port}/open")
    job_id = await submit(gw.client)
    await gw.gateway.blobs.delete(f"inputs/{job_id}")  # the job's input vanishes: a bug, not a bad request
    await gw.client.post(f"/api/circuit-breakers/{fake.host_port}/close")
    status = await gw.wait_job(job_id)
    error = status["error_details"]
    assert status["status"] == "failed" and error["code"] == "internal_error"
    assert error["message"] == f"internal error (reference {error['reference']})"
    result = await gw.client.get(f"/api/jobs/{job_id}/result")
    assert result.status_code == 409  # the original's answer for a failed job's result
    for text in (status, result.text):
        assert "KeyError" not in str(text) and "inputs/" not in str(text)


async def test_the_event_stream_reads_the_store_only_when_the_job_changes(gw):
    for fake in gw.fakes:
        fake.pause()
    job_id = await submit(gw.client)
    await eventually(lambda: sum(f.stats()["queue_depth"] for f in gw.fakes) == 1, what="the prompt at a server")
    reads = counted_reads(gw.gateway.store)
    statuses = []
    async with gw.client.stream("GET", f"/api/jobs/{job_id}/events") as resp:
        lines = resp.aiter_lines()
        async for line in lines:
            if line.startswith("data: "):
                statuses.append(line)
                break
        read_before = len(reads)
        await asyncio.sleep(1.5)  # nothing changes meanwhile: a poller would read six times
        assert len(reads) == read_before
        for fake in gw.fakes:
            fake.resume()
        async for line in lines:
            if line.startswith("data: "):
                statuses.append(line)
    assert '"completed"' in statuses[-1] and len(statuses) >= 2
    assert len(reads) < 20  # one read per change, not one per quarter second


async def test_a_start_that_fails_leaves_no_task_running_embedded(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes))
    async with running_gateway(settings):
        pass  # leaves a jobs database behind
    with sqlite3.connect(settings.jobs_db_path) as db:  # a row the recovery cannot read
        db.execute("INSERT INTO jobs (id, type, state, created_at, updated_at, attempt, data) "
                   """VALUES ('broken', 'x', 'processing', 0, 0, 1, '{"no_such_field": 1}')""")
    before = asyncio.all_tasks()
    app = create_app(settings)
    with pytest.raises(TypeError):  # the recovery cannot read the row: the lifespan does not start
        async with app.router.lifespan_context(app):
            pass
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert left == [], [t.get_name() for t in left]


async def test_a_timeout_inside_an_attempt_is_not_taken_for_the_job_deadline(gw):
    async def times_out(*args: object) -> None:  # some inner call's own timeout, well before JOB_TIMEOUT
        raise TimeoutError

    gw.gateway.execution.run = times_out  # type: ignore[method-assign]
    job_id = await submit(gw.client)
    status = await gw.wait_job(job_id)
    assert status["status"] == "failed"
    assert status["error_details"]["code"] == "internal_error", status  # not "job_timed_out"


async def test_a_sync_request_whose_finish_event_is_lost_is_answered_all_the_same(gw, monkeypatch):
    """A notification can be lost (a Redis message dropped): the wait reads its job now and then."""
    events = gw.gateway.events
    monkeypatch.setattr(events, "deliver", lambda job_id, finished=True: None)  # nothing is heard
    async with asyncio.timeout(20):
        answer = await gw.client.post("/api/upscale-image", files=IMAGE)
    assert answer.status_code == 200 and answer.json()["imageBase64"].startswith("data:image/png;base64,")


async def test_the_input_is_uploaded_while_the_placement_is_written_and_the_prompt_waits_for_it(
        fake_servers, tmp_path, monkeypatch):
    """Whoever adopts a job follows the server its placement names, so no prompt is posted before
    that write is done; the upload need not wait for it."""
    fakes = await fake_servers(2)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), input_mode="upload")) as gw:
        gw.fakes = fakes
        await _upload_overlaps_the_placement(gw, monkeypatch)


async def _upload_overlaps_the_placement(gw, monkeypatch) -> None:
    store = gw.gateway.dispatcher.store
    real_record = store.record_placement
    writing, go_on = asyncio.Event(), asyncio.Event()

    async def slow_record(*args, **kwargs):
        writing.set()
        await go_on.wait()
        return await real_record(*args, **kwargs)

    monkeypatch.setattr(store, "record_placement", slow_record)
    job_id = await submit(gw.client)
    await asyncio.wait_for(writing.wait(), 5)
    uploaded = lambda: [p.name for f in gw.fakes for p in f.storage.input_dir.iterdir() if job_id in p.name]  # noqa: E731
    await eventually(lambda: bool(uploaded()), timeout=5, what="the input uploaded during the write")
    await asyncio.sleep(0.2)  # time enough for a prompt that did not wait to arrive
    assert sum(f.stats()["prompts_received"] for f in gw.fakes) == 0
    go_on.set()
    status = await gw.wait_job(job_id)
    assert status["status"] == "completed"
    stored = await store.get(job_id)
    assert stored is not None and stored.placement and stored.instance in {f.host_port for f in gw.fakes}
    assert sum(f.stats()["prompts_received"] for f in gw.fakes) == 1
