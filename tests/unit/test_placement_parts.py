"""Placement's parts on their own: capabilities from /object_info, a workflow's needs, the estimates,
the queue ahead on a server, and which job types the dispatcher should claim now."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from comfy_gateway.comfyui.capabilities import Capabilities, parse_object_info, parse_vram
from comfy_gateway.comfyui.instance import InstancePool
from comfy_gateway.dispatch.backlog import Backlog, Sent, ServerQueue
from comfy_gateway.dispatch.estimates import ServiceEstimates
from comfy_gateway.dispatch.placement import Placement
from comfy_gateway.errors import NoCapableServer
from comfy_gateway.jobs.model import Job
from comfy_gateway.workflows.graph import GRAPH_JOB_TYPE
from comfy_gateway.workflows.needs import ModelRef, needs_of
from comfy_gateway.workflows.registry import WorkflowRegistry, parse_workflow

OBJECT_INFO = {
    "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["sd15.safetensors", "xl.safetensors"]]}}},
    "UpscaleModelLoader": {"input": {"required": {"model_name": ["COMBO", {"multiselect": False,
                                                                          "options": ["4x.pth"]}]}}},
    "LoraLoader": {"input": {"required": {"model": ["MODEL"]}, "optional": {"lora_name": [["style.safetensors"], {}]}}},
    "SaveImage": {"input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "x"}]}}},
}


def test_capabilities_read_both_combo_encodings_and_name_what_is_missing() -> None:
    caps = parse_object_info(OBJECT_INFO)
    assert caps.node_classes == frozenset(OBJECT_INFO)
    assert caps.options("CheckpointLoaderSimple", "ckpt_name") == ["sd15.safetensors", "xl.safetensors"]
    assert caps.options("UpscaleModelLoader", "model_name") == ["4x.pth"]
    assert caps.options("LoraLoader", "lora_name") == ["style.safetensors"]
    assert caps.options("SaveImage", "filename_prefix") is None
    needs = [ModelRef("UpscaleModelLoader", "model_name", "8x.pth"), ModelRef("CheckpointLoaderSimple", "ckpt_name",
                                                                               "xl.safetensors")]
    assert caps.missing({"SaveImage", "InspyrenetRembg"}, needs) == [
        "node InspyrenetRembg", "model 8x.pth (UpscaleModelLoader.model_name)"]
    assert caps.missing({"SaveImage"}, [ModelRef("VAELoader", "vae_name", "v.pt")]) == []  # no options listed


def test_vram_is_summed_over_devices() -> None:
    stats = {"devices": [{"vram_total": 8, "vram_free": 3}, {"vram_total": 16, "vram_free": 10}]}
    vram = parse_vram(stats)
    assert vram is not None and (vram.total, vram.free) == (24, 13)
    assert parse_vram({"devices": [{"name": "cpu"}]}) is None
    assert parse_vram({}) is None


def test_needs_are_node_classes_and_named_model_files() -> None:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "xl.safetensors"}},
        "2": {"class_type": "InspyrenetRembg", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["2", 0]}},
    }
    needs = needs_of(graph)
    assert needs.node_classes == {"CheckpointLoaderSimple", "InspyrenetRembg", "SaveImage"}
    assert needs.models == {ModelRef("CheckpointLoaderSimple", "ckpt_name", "xl.safetensors")}
    assert needs.warm_keys == {"xl.safetensors", "InspyrenetRembg"}


def test_a_parameter_that_names_a_model_changes_the_needs() -> None:
    workflow = parse_workflow({
        "name": "up", "input": {"node": "1"}, "result": {"node": "3"},
        "parameters": {"model": {"node": "2", "input": "model_name", "choices": ["4x.pth", "8x.pth"]}},
        "graph": {"1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": ""}},
                  "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x.pth"}},
                  "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}})
    assert {m.file for m in workflow.needs().models} == {"4x.pth"}
    assert {m.file for m in workflow.needs({"model": "8x.pth"}).models} == {"8x.pth"}


def test_estimates_fall_back_and_measure_the_switch_cost() -> None:
    est = ServiceEstimates(prior_s={"up": 5.0}, default_prior_s=1.0, switch_prior_s=2.0)
    assert (est.service("up", "a"), est.service("other", "a"), est.switch_cost("up", "a")) == (5.0, 1.0, 2.0)
    est.observe("up", "a", 3.0, cold=True)
    assert est.service("up", "a") == 1.0  # cold minus the assumed switch cost, until a warm run is seen
    est.observe("up", "a", 0.5, cold=False)
    assert (est.service("up", "a"), est.switch_cost("up", "a")) == (0.5, 2.5)
    assert est.service("up", "b") == 0.5  # another server: the same workflow elsewhere
    est.observe("up", "a", 1.5, cold=False)
    assert est.service("up", "a") == pytest.approx(0.5 + 0.3 * 1.0)
    assert est.expected("up", "a", cold=True) == pytest.approx(0.8 + (3.0 - 0.8))
    assert est.service("up", "b") == pytest.approx(0.8)  # the fallback follows every new sample
    est.observe("up", "c", 2.0, cold=False)
    assert est.service("up", "b") == pytest.approx((0.8 + 2.0) / 2)


def test_the_queue_ahead_counts_what_is_left_of_the_job_under_way() -> None:
    now = time.monotonic()
    queue = ServerQueue([Sent("j1", "up", 1.0, cold=False, sent_at=now - 0.4), Sent("j2", "up", 1.0, cold=True)])
    assert queue.ahead_s(now) == pytest.approx(0.6 + 1.0)
    assert queue.until_end("j2", now) == pytest.approx(1.6)
    backlog = Backlog()
    backlog.sent("a", Sent("j1", "up", 1.0, cold=True, sent_at=now - 2.0))
    assert "j1" in backlog
    ended = backlog.ended("a", "j1")
    assert ended is not None and ended.cold and ended.held_s >= 2.0
    assert "j1" not in backlog and backlog.ended("a", "j1") is None


@pytest.fixture
async def pool() -> AsyncIterator[InstancePool]:
    async with aiohttp.ClientSession() as session:  # nothing is connected: the pool is not entered
        yield InstancePool(("a:1", "b:1"), base_url=lambda h: f"http://{h}", session=session, max_connections=1)


def placement_on(pool: InstancePool) -> Placement:
    estimates = ServiceEstimates(prior_s={}, default_prior_s=0.3, switch_prior_s=1.0)
    return Placement(pool=pool, registry=WorkflowRegistry.load(), estimates=estimates, strategy="affinity",
                     per_instance=2, total=8)


async def test_a_type_waits_for_its_warm_server_unless_a_capable_one_is_idle(pool: InstancePool) -> None:
    placement = placement_on(pool)
    a, b = pool.get("a:1"), pool.get("b:1")
    assert a is not None and b is not None
    a.prompt_sent(frozenset({"4x_NMKD-Siax_200k.pth"}))
    b.prompt_sent(frozenset({"InspyrenetRembg"}))
    plan = placement.plan(["a:1", "b:1"], {"a:1": 1, "b:1": 2})
    # remove-background is best on b (warm, full): it waits rather than switch a's model
    assert plan.free == ("a:1",) and plan.types == {"upscale-image", "upscale-remove-bg", GRAPH_JOB_TYPE}
    assert placement.plan(["a:1", "b:1"], {"b:1": 2}).types is None  # a is idle: everything may start
    assert placement.plan(["a:1", "b:1"], {"a:1": 2, "b:1": 2}).free == ()
    job = Job(id="j", type="remove-background")
    assert [c.instance for c in placement.rank(job, ["a:1", "b:1"], {}, avoid=None)] == ["b:1", "a:1"]
    assert [c.instance for c in placement.rank(job, ["a:1", "b:1"], {}, avoid="b:1")] == ["a:1", "b:1"]
    assert placement.rank(job, ["a:1", "b:1"], {}, avoid=None)[0].reason == "warm model, 0 ahead"


async def test_only_servers_that_have_the_node_are_used_and_none_is_refused(pool: InstancePool) -> None:
    placement = placement_on(pool)
    a, b = pool.get("a:1"), pool.get("b:1")
    assert a is not None and b is not None
    a.capabilities = Capabilities(frozenset({"ETN_LoadImageBase64", "SaveImage", "MaskToImage"}))
    job = Job(id="j", type="remove-background")
    assert [c.instance for c in placement.rank(job, ["a:1", "b:1"], {}, avoid=None)] == ["b:1"]
    placement.check_runnable("remove-background", None)  # b is not known yet: it may have the node
    b.capabilities = a.capabilities
    with pytest.raises(NoCapableServer) as refused:
        placement.check_runnable("remove-background", None)
    assert refused.value.details["missing"] == ["node InspyrenetRembg"]
    assert set(refused.value.details["servers"]) == {"a:1", "b:1"}
    # No named workflow can run on them; a submitted graph may (its own needs pick its server).
    assert placement.plan(["a:1", "b:1"], {}).types == {GRAPH_JOB_TYPE}


async def test_a_job_can_start_only_while_a_server_that_can_run_it_is_up(pool: InstancePool) -> None:
    placement = placement_on(pool)
    a, b = pool.get("a:1"), pool.get("b:1")
    assert a is not None and b is not None
    a.capabilities = Capabilities(frozenset({"ETN_LoadImageBase64", "SaveImage"}))
    job = Job(id="j", type="remove-background")
    assert placement.can_start(job)  # b, not read yet, may have the node
    b.breaker.trip(60)
    assert not placement.can_start(job)  # a is up but lacks InspyrenetRembg: a sync request is withdrawn


async def test_a_pending_job_waits_for_those_ahead_and_the_unseen_older_ones(pool: InstancePool) -> None:
    placement = placement_on(pool)  # every service time 0.3 s, two idle servers
    job = Job(id="last", type="upscale-image")
    assert placement.estimate(job, [], 0, {}) == pytest.approx(0.3 + 1.0)  # its model is not loaded yet
    for inst in pool:
        inst.prompt_sent(frozenset({"4x_NMKD-Siax_200k.pth"}))
    ahead = [Job(id=f"a{i}", type="upscale-image") for i in range(3)]
    assert placement.estimate(job, ahead, 0, {}) == pytest.approx(0.6)  # two rounds on two servers
    assert placement.estimate(job, ahead, 10, {}) == pytest.approx(10 * 0.3 / 2 + 0.6)
    for inst in pool:
        inst.breaker.trip(60)
    assert placement.estimate(job, ahead, 0, {}) is None  # no server is up
