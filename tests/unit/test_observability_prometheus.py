from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from comfy_gateway.observability.prometheus import PromMetrics

FAMILIES = {
    # counters are exposed as <name>_total; the parser names the family without the suffix
    "comfy_gateway_http_requests": "counter",
    "comfy_gateway_http_request_duration_seconds": "histogram",
    "comfy_gateway_jobs": "counter",
    "comfy_gateway_job_duration_seconds": "histogram",
    "comfy_gateway_job_queue_wait_seconds": "histogram",
    "comfy_gateway_queue_depth": "gauge",
    "comfy_gateway_jobs_running": "gauge",
    "comfy_gateway_instance_healthy": "gauge",
    "comfy_gateway_circuit_breaker_state": "gauge",
    "comfy_gateway_websocket_reconnects": "counter",
    "comfy_gateway_upstream_errors": "counter",
    # what autoscalers read
    "comfy_gateway_queue_depth_by_workflow": "gauge",
    "comfy_gateway_demand_by_workflow": "gauge",
    "comfy_gateway_queue_oldest_pending_age_seconds": "gauge",
    "comfy_gateway_pool_slots": "gauge",
    "comfy_gateway_pool_slots_busy": "gauge",
    "comfy_gateway_instance_slots": "gauge",
}


def _samples(prom: PromMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = prom.render()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _record_one_of_each(prom: PromMetrics) -> None:
    prom.observe_request("GET", "/api/jobs/{job_id}/status", 200, 0.012)
    prom.job_started("upscale-image", 1.5)
    prom.job_finished("upscale-image", "gpu-a", "completed", 42.0)
    prom.set_queue_depth(3)
    prom.set_jobs_running("gpu-a", 2)
    prom.set_instance_healthy("gpu-a", True)
    prom.set_instance_healthy("gpu-b", False)
    prom.set_circuit_state("gpu-b", "open")
    prom.websocket_reconnected("gpu-a")
    prom.upstream_error("gpu-b", "connect")
    prom.set_demand({"upscale-image": 2}, {"upscale-image": 1}, ["upscale-image"], 4.0)
    prom.set_pool_slots(4, 1, {"gpu-a": 2, "gpu-b": 2})


def test_render_holds_every_family_with_its_type() -> None:
    prom = PromMetrics()
    _record_one_of_each(prom)
    body, content_type = prom.render()
    assert content_type.startswith("text/plain; version=")
    families = {
        f.name: f.type
        for f in text_string_to_metric_families(body.decode())
        if not f.name.endswith("_created")  # the client's per-series creation timestamps
    }
    assert families == FAMILIES


def test_families_are_declared_before_anything_is_recorded() -> None:
    body, _ = PromMetrics().render()
    assert {f.name for f in text_string_to_metric_families(body.decode())} == set(FAMILIES)


def test_recorded_values() -> None:
    prom = PromMetrics()
    _record_one_of_each(prom)
    prom.observe_request("GET", "/api/jobs/{job_id}/status", 200, 0.5)
    prom.job_finished("upscale-image", None, "timed_out", None)
    s = _samples(prom)
    route = ("method", "GET"), ("route", "/api/jobs/{job_id}/status")
    assert s[("comfy_gateway_http_requests_total", (*route, ("status", "200")))] == 2
    assert s[("comfy_gateway_http_request_duration_seconds_count", route)] == 2
    assert s[("comfy_gateway_http_request_duration_seconds_sum", route)] == pytest.approx(0.512)
    upscale = ("type", "upscale-image")
    assert s[("comfy_gateway_jobs_total", (("instance", "gpu-a"), ("outcome", "completed"), upscale))] == 1
    assert (
        s[("comfy_gateway_jobs_total", (("instance", "unassigned"), ("outcome", "timed_out"), upscale))] == 1
    )
    # a job without a duration is counted but not observed
    assert s[("comfy_gateway_job_duration_seconds_count", (("type", "upscale-image"),))] == 1
    assert s[("comfy_gateway_job_duration_seconds_sum", (("type", "upscale-image"),))] == 42.0
    assert s[("comfy_gateway_job_queue_wait_seconds_sum", (("type", "upscale-image"),))] == 1.5
    assert s[("comfy_gateway_queue_depth", ())] == 3
    assert s[("comfy_gateway_jobs_running", (("instance", "gpu-a"),))] == 2
    assert s[("comfy_gateway_instance_healthy", (("instance", "gpu-a"),))] == 1
    assert s[("comfy_gateway_instance_healthy", (("instance", "gpu-b"),))] == 0
    assert s[("comfy_gateway_circuit_breaker_state", (("instance", "gpu-b"),))] == 2
    assert s[("comfy_gateway_websocket_reconnects_total", (("instance", "gpu-a"),))] == 1
    assert s[("comfy_gateway_upstream_errors_total", (("instance", "gpu-b"), ("kind", "connect")))] == 1


@pytest.mark.parametrize(("state", "value"), [("closed", 0), ("half-open", 1), ("half_open", 1), ("OPEN", 2)])
def test_circuit_states(state: str, value: int) -> None:
    prom = PromMetrics()
    prom.set_circuit_state("gpu-a", state)
    assert _samples(prom)[("comfy_gateway_circuit_breaker_state", (("instance", "gpu-a"),))] == value


def test_unknown_circuit_state_is_refused() -> None:
    with pytest.raises(ValueError, match="ajar"):
        PromMetrics().set_circuit_state("gpu-a", "ajar")


def test_each_object_owns_its_registry() -> None:
    one, two = PromMetrics(), PromMetrics()  # the global registry would refuse duplicate names
    one.set_queue_depth(5)
    assert _samples(two)[("comfy_gateway_queue_depth", ())] == 0
    assert REGISTRY.get_sample_value("comfy_gateway_queue_depth") is None
