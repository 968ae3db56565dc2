"""What the dashboard reads: previews of a job's input and result, the timeline, and the page's own files."""

from __future__ import annotations

import re
from importlib import resources

from support.images import decode, png

STATIC = resources.files("comfy_gateway.api").joinpath("static")


async def test_previews_are_small_webp_images_of_input_and_result(gw):
    resp = await gw.client.post("/api/async/upscale-image", files={"imageFile": ("a.png", png(300, 200), "image/png")})
    job_id = resp.json()["job_id"]
    await gw.wait_job(job_id)
    small = await gw.client.get(f"/api/jobs/{job_id}/preview/input", params={"size": 60})
    result = await gw.client.get(f"/api/jobs/{job_id}/preview/result")
    assert small.headers["content-type"] == "image/webp"
    assert decode(small.content).size == (60, 40)
    assert decode(result.content).size == (160, 107)  # the 600x400 result, 160 a side by default


async def test_previews_refuse_what_they_cannot_show(gw):
    gw.fakes[0].hang_next(1)
    gw.fakes[1].hang_next(1)
    resp = await gw.client.post("/api/async/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
    job_id = resp.json()["job_id"]
    early = await gw.client.get(f"/api/jobs/{job_id}/preview/result")
    assert early.status_code == 409 and early.json()["code"] == "job_not_finished"
    unknown = await gw.client.get("/api/jobs/no-such-job/preview/input")
    assert unknown.status_code == 404 and "not found" in unknown.json()["error"]
    for bad in (f"/api/jobs/{job_id}/preview/other", f"/api/jobs/{job_id}/preview/input?size=5000"):
        answer = await gw.client.get(bad)
        assert answer.status_code == 422 and answer.headers["content-type"] == "application/json"
    await gw.client.delete(f"/api/jobs/{job_id}")


async def test_the_dashboard_and_its_modules_are_served_from_the_package(gw):
    page = await gw.client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for src in re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', page.text):
        asset = await gw.client.get(src)
        assert asset.status_code == 200, src
    script = await gw.client.get("/dashboard/static/js/main.js")
    assert "javascript" in script.headers["content-type"]
    missing = await gw.client.get("/dashboard/static/js/nope.js")
    assert missing.status_code == 404


async def test_the_endpoints_the_page_reads_exist(gw):
    sources = "".join(f.read_text(encoding="utf-8") for f in STATIC.joinpath("js").iterdir())
    paths = set(re.findall(r'getJSON\([`"](/[^"`?$]+)[`"?]', sources))  # templated paths left out
    assert {"/api/workflows", "/api/metrics/instances", "/api/jobs/stats", "/api/metrics/timeline"} <= paths
    for path in paths:
        assert (await gw.client.get(path)).status_code == 200, path


def test_the_dashboard_loads_nothing_from_elsewhere():
    """Works offline: no file of the page names another host (the SVG namespace is a name, not a fetch)."""
    files = [STATIC / "dashboard.html", STATIC / "dashboard.css", *STATIC.joinpath("js").iterdir()]
    for file in files:
        text = file.read_text(encoding="utf-8").replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), file.name


async def test_the_timeline_counts_finished_jobs_and_samples_the_queue(gw):
    for _ in range(3):
        resp = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        assert resp.status_code == 200
    body = (await gw.client.get("/api/metrics/timeline")).json()
    assert (body["span_seconds"], body["step_seconds"]) == (900, 10)
    assert sum(p["finished"] for p in body["points"]) == 3 and sum(p["failed"] for p in body["points"]) == 0
    assert any(p["p95_latency_ms"] is not None for p in body["points"])
    assert any(p["pending"] is not None for p in body["points"])  # the sampler runs from the start
