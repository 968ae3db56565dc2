"""Placement over real fakes: jobs go only where they can run, are refused when nowhere can, and are
placed (and estimated) from what each server has loaded and how long its jobs take."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path

from support.gateway import RunningGateway, gateway_settings, hosts_of, running_gateway
from support.images import png
from support.tally import submit, tally
from support.waiting import eventually


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def capabilities_known(gw: RunningGateway) -> None:
    await eventually(lambda: all(i.capabilities is not None for i in gw.gateway.pool), timeout=10,
                     what="every server's /object_info")


async def test_jobs_avoid_the_server_without_their_node(fake_servers, tmp_path: Path) -> None:
    able = await fake_servers(2)
    (lacking,) = await fake_servers(1, without_nodes=["InspyrenetRembg"])
    async with running_gateway(gateway_settings(tmp_path, hosts_of([*able, lacking]))) as gw:
        await capabilities_known(gw)
        ids = await asyncio.gather(*(submit(gw.client, "remove-background") for _ in range(30)))
        await asyncio.gather(*(gw.wait_job(job_id, timeout=60) for job_id in ids))
        result = await tally(gw.client, ids)
        assert result.completed == 30, result.line()
        assert lacking.stats()["prompts_received"] == 0
        assert sum(f.stats()["prompts_received"] for f in able) == 30

        info = (await gw.client.get(f"/api/jobs/{ids[-1]}/info")).json()
        assert info["placement"]["instance"] == info["comfyui_instance"] != lacking.host_port
        assert info["placement"]["reason"].endswith("ahead") and "warm" in json.dumps(info["placement"])

        views = {name: view["placement"] for name, view in
                 (await gw.client.get("/api/metrics/instances")).json()["instances"].items()}
        summary = views[lacking.host_port]["capabilities"]
        assert summary["workflows"]["remove-background"] == "missing node InspyrenetRembg"
        assert summary["workflows"]["upscale-image"] == "ok"
        assert "4x_NMKD-Siax_200k.pth" in summary["models"]["UpscaleModelLoader.model_name"]
        assert views[lacking.host_port]["vram"]["total_bytes"] > 0
        assert any(views[f.host_port]["warm_models"] == ["InspyrenetRembg"] for f in able)


def _write_workflow(folder: Path, name: str, node_class: str) -> None:
    folder.mkdir(exist_ok=True)
    graph = {
        "1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": ""}},
        "2": {"class_type": node_class, "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["2", 0]}},
    }
    (folder / f"{name}.json").write_text(json.dumps(
        {"name": name, "input": {"node": "1"}, "result": {"node": "3"}, "graph": graph}))


async def test_a_node_no_server_has_is_refused_at_submit(fake_servers, tmp_path: Path) -> None:
    fakes = await fake_servers(2)
    _write_workflow(tmp_path / "wf", "sharpen", "NoSuchSharpen")
    settings = gateway_settings(tmp_path, hosts_of(fakes), workflows_dir=tmp_path / "wf")
    async with running_gateway(settings) as gw:
        await capabilities_known(gw)
        resp = await gw.client.post("/api/run/sharpen?async=true",
                                    files={"imageFile": ("in.png", png(), "image/png")})
        assert resp.status_code == 422, resp.text
        body = resp.json()
        assert body["code"] == "no_capable_server"
        assert "NoSuchSharpen" in body["error"]
        assert body["missing"] == ["node NoSuchSharpen"]
        assert body["servers"] == {f.host_port: ["node NoSuchSharpen"] for f in fakes}
        assert sum(f.stats()["prompts_received"] for f in fakes) == 0
        assert (await gw.client.get("/api/jobs/stats")).json()["total_jobs"] == 0


async def test_a_model_no_server_offers_is_refused_and_unknown_servers_count_as_able(
        fake_servers, tmp_path: Path) -> None:
    fakes = await fake_servers(2, models=["other.pth"])
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        await capabilities_known(gw)
        resp = await gw.client.post("/api/async/upscale-image", files={"imageFile": ("in.png", png(), "image/png")})
        assert resp.status_code == 422, resp.text
        assert resp.json()["missing"] == ["model 4x_NMKD-Siax_200k.pth (UpscaleModelLoader.model_name)"]
        gw.gateway.pool.get(fakes[0].host_port).capabilities = None  # as if never reached yet
        resp = await gw.client.post("/api/async/upscale-image", files={"imageFile": ("in.png", png(), "image/png")})
        assert resp.status_code == 202, resp.text


async def _finish_seconds(gw: RunningGateway, job_id: str) -> float:
    info = (await gw.client.get(f"/api/jobs/{job_id}/info")).json()
    assert info["status"] == "completed", info
    return parse_iso(info["finished_at"]) - parse_iso(info["created_at"])


async def test_eta_of_queued_jobs_is_within_30_percent(fake_servers, tmp_path: Path) -> None:
    fakes = await fake_servers(2, service_time=0.5)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        await capabilities_known(gw)
        warm_up = await asyncio.gather(*(submit(gw.client) for _ in range(4)))
        await asyncio.gather(*(gw.wait_job(job_id) for job_id in warm_up))
        predicted: dict[str, float] = {}  # job id -> seconds from its creation to its expected end
        texts: list[str] = []
        for _ in range(8):
            resp = await gw.client.post("/api/async/upscale-image", files={"imageFile": ("in.png", png(), "image/png")})
            assert resp.status_code == 202
            texts.append(resp.json()["estimated_completion_time"])
            status = (await gw.client.get(f"/api/jobs/{resp.json()['job_id']}/status")).json()
            read_at = time.time()
            predicted[status["job_id"]] = (read_at - parse_iso(status["created_at"])
                                           + status["eta_seconds"])  # the whole-second figure is the seed's
        await asyncio.gather(*(gw.wait_job(job_id) for job_id in predicted))
        actual = {job_id: await _finish_seconds(gw, job_id) for job_id in predicted}
        assert max(actual.values()) > 1.5  # the last ones really waited behind the others
        for job_id, seconds in actual.items():
            assert abs(predicted[job_id] - seconds) <= 0.3 * seconds, (predicted[job_id], seconds)
        assert texts[0] == "1-2 seconds"  # the seed's display string, from the same estimate:
        for text, job_id in zip(texts, predicted, strict=True):  # each range brackets that job's estimate
            low, high = (int(n) for n in text.removesuffix(" seconds").split("-"))
            estimate = predicted[job_id]
            assert low <= max(1.0, estimate * 1.1) and high >= estimate * 0.9, (text, estimate)


async def test_a_server_not_read_yet_that_lacks_the_node_hands_its_jobs_on(fake_servers, tmp_path: Path) -> None:
    (able,) = await fake_servers(1)
    (lacking,) = await fake_servers(1, without_nodes=["InspyrenetRembg"])
    settings = gateway_settings(tmp_path, hosts_of([able, lacking]), health_check_interval=60_000)
    async with running_gateway(settings) as gw:
        await capabilities_known(gw)
        unknown = gw.gateway.pool.get(lacking.host_port)
        assert unknown is not None
        unknown.capabilities = None  # as if its /object_info had not been read yet
        ids = await asyncio.gather(*(submit(gw.client, "remove-background") for _ in range(6)))
        await asyncio.gather(*(gw.wait_job(job_id) for job_id in ids))
        result = await tally(gw.client, ids)
        assert result.completed == 6, result.line()
        assert lacking.stats()["prompts_rejected"] >= 1  # it was tried, refused the graph, and was read again
        assert unknown.capabilities is not None and "InspyrenetRembg" not in unknown.capabilities.node_classes


def _write_model_choice_workflow(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    graph = {
        "1": {"class_type": "ETN_LoadImageBase64", "inputs": {"image": ""}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x_NMKD-Siax_200k.pth"}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["3", 0]}},
    }
    params = {"model": {"node": "2", "input": "model_name", "choices": ["4x_NMKD-Siax_200k.pth", "rare.pth"]}}
    (folder / "upscale-choice.json").write_text(json.dumps(
        {"name": "upscale-choice", "input": {"node": "1"}, "result": {"node": "4"}, "parameters": params,
         "graph": graph}))


async def test_a_model_chosen_by_parameter_waits_for_the_server_that_has_it(fake_servers, tmp_path: Path) -> None:
    (common,) = await fake_servers(1, models=["4x_NMKD-Siax_200k.pth"])
    (rare,) = await fake_servers(1, service_time=0.2, models=["4x_NMKD-Siax_200k.pth", "rare.pth"])
    _write_model_choice_workflow(tmp_path / "wf")
    settings = gateway_settings(tmp_path, hosts_of([common, rare]), workflows_dir=tmp_path / "wf",
                                max_jobs_per_instance=1, max_attempts=1)
    async with running_gateway(settings) as gw:
        await capabilities_known(gw)

        async def run(model: str) -> str:
            resp = await gw.client.post(f"/api/run/upscale-choice?async=true&model={model}",
                                        files={"imageFile": ("in.png", png(), "image/png")})
            assert resp.status_code == 202, resp.text
            return str(resp.json()["job_id"])

        ids = [await run("rare.pth") for _ in range(4)]
        await asyncio.gather(*(gw.wait_job(job_id, timeout=30) for job_id in ids))
        result = await tally(gw.client, ids)
        assert result.completed == 4, (result.line(), result.failed_codes())
        assert common.stats()["prompts_received"] == 0 and rare.stats()["prompts_received"] == 4
        infos = [(await gw.client.get(f"/api/jobs/{job_id}/info")).json() for job_id in ids]
        given_back = [h for i in infos for h in i["attempts_history"] if h["error"]["code"] == "not_placed"]
        assert given_back  # claimed while only the other server was free: handed back, not failed
        assert len(given_back) <= 3 * len(ids)  # once per freed slot at most, not once per wake-up
        common_job = await run("4x_NMKD-Siax_200k.pth")
        assert (await gw.wait_job(common_job))["status"] == "completed"
