"""The v2 pieces that need no server: graph rendering, the event timeline and its ids, status words."""

from __future__ import annotations

import pytest

from comfy_gateway.api.v2.events import resume_point, timeline
from comfy_gateway.api.v2.views import v2_status
from comfy_gateway.errors import MissingAsset
from comfy_gateway.jobs.model import Job, JobState
from comfy_gateway.settings import Settings
from comfy_gateway.workflows.graph import asset_ids, render_graph

REF = {"__type": "core/ASSET", "info": {"id": "a1"}}


def test_references_are_replaced_wherever_they_are_and_save_prefixes_made_unique() -> None:
    graph = {"1": {"class_type": "LoadImageBatch", "inputs": {"images": [REF, {"nested": REF}]}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "out"}}}

    rendered = render_graph(graph, {"a1": "cg_abc_in.png"}, run_tag="job_1")

    assert rendered["1"]["inputs"]["images"] == ["cg_abc_in.png", {"nested": "cg_abc_in.png"}]
    assert rendered["2"]["inputs"]["filename_prefix"] == "out_job_1"
    assert graph["1"]["inputs"]["images"][0] is REF  # the job's own graph is left as it was
    assert asset_ids(graph) == ["a1"]


def test_a_reference_without_an_id_is_a_missing_asset() -> None:
    with pytest.raises(MissingAsset):
        asset_ids({"1": {"class_type": "LoadImage", "inputs": {"image": {"__type": "core/ASSET", "info": {}}}}})


def test_the_timeline_of_a_retried_job_only_grows() -> None:
    settings = Settings(_env_file=None)
    job = Job(id="j", type="api-graph", state=JobState.PROCESSING, attempt=1)
    running = timeline(job, "http://gw", settings)
    job.state, job.history = JobState.PENDING, [{"attempt": 1, "error": {"code": "upstream_unavailable"}}]
    requeued = timeline(job, "http://gw", settings)
    job.state, job.attempt = JobState.PROCESSING, 2
    retried = timeline(job, "http://gw", settings)
    job.state, job.error = JobState.FAILED, {"code": "canceled"}
    canceled = timeline(job, "http://gw", settings)

    assert [d["status"] for _, d in canceled] == ["queued", "running", "queued", "running", "canceled"]
    for shorter, longer in ((running, requeued), (requeued, retried), (retried, canceled)):
        assert longer[:len(shorter)] == shorter


def test_a_cancel_while_running_adds_canceling_and_the_timeline_still_only_grows() -> None:
    settings = Settings(_env_file=None)
    job = Job(id="j", type="api-graph", state=JobState.PROCESSING, attempt=1)
    running = timeline(job, "http://gw", settings)
    job.canceling_at = 1.0
    canceling = timeline(job, "http://gw", settings)
    job.state, job.error = JobState.FAILED, {"code": "canceled"}
    canceled = timeline(job, "http://gw", settings)

    assert v2_status(Job(id="k", type="api-graph", state=JobState.PROCESSING, canceling_at=1.0)) == "canceling"
    assert [d["status"] for _, d in canceled] == ["queued", "running", "canceling", "canceled"]
    assert canceling[:len(running)] == running and canceled[:len(canceling)] == canceling


@pytest.mark.parametrize(("header", "expected"), [
    (None, (0, None)), ("3", (3, None)), ("3-42", (3, 42)), ("junk", (0, None)), ("-1", (0, None)),
])
def test_resume_points(header: str | None, expected: tuple[int, int | None]) -> None:
    assert resume_point(header) == expected


@pytest.mark.parametrize(("state", "error", "status"), [
    (JobState.PENDING, None, "queued"), (JobState.PROCESSING, None, "running"),
    (JobState.COMPLETED, None, "succeeded"), (JobState.FAILED, {"code": "canceled"}, "canceled"),
    (JobState.FAILED, {"code": "queue_timeout"}, "expired"), (JobState.FAILED, {"code": "job_timed_out"}, "failed"),
])
def test_gateway_states_in_v2_words(state: JobState, error: dict[str, str] | None, status: str) -> None:
    assert v2_status(Job(id="j", type="api-graph", state=state, error=error)) == status
