"""The dashboard in a real headless Chromium, used as a person would: submit, watch, compare, cancel.

Selenium's calls block, so each browser session runs in a worker thread while the gateway and the
fake servers keep serving on the test's event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

from support.browser import leave_page, sent_requests
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png, scene
from support.keys import KEYS, auth, write_keys
from support.waiting import eventually

API_KEY = "dashboard-test-key"
# Records every value the progress bar shows, so a quick job's steps are not missed between polls.
WATCH_PROGRESS = """
window.progressSeen = [];
new MutationObserver(() => window.progressSeen.push(Number(
    document.getElementById('progress').getAttribute('aria-valuenow'))))
  .observe(document.getElementById('progress'), {attributes: true, attributeFilter: ['aria-valuenow']});
"""


def open_dashboard(driver: Any, url: str) -> WebDriverWait:
    driver.get(f"{url}/dashboard")
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#workflow option[value=upscale-remove-bg]"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#pool-cards .server"))
    return wait


def try_it(driver: Any, url: str, image: Path, artifacts: Path) -> dict[str, Any]:
    wait = open_dashboard(driver, url)
    Select(driver.find_element(By.ID, "workflow")).select_by_value("upscale-remove-bg")
    scale = driver.find_element(By.ID, "param-scale_by")
    scale.clear()
    scale.send_keys("0.75")  # the fake's 4x model, then 0.75: three times the input
    key = driver.find_element(By.ID, "api-key")
    key.send_keys(API_KEY)
    key.send_keys(Keys.TAB)  # `change`: kept for the session, used from the next request on
    driver.find_element(By.ID, "file").send_keys(str(image))
    driver.execute_script(WATCH_PROGRESS)
    sent_requests(driver)  # forget what the page loaded before the key was set
    driver.find_element(By.ID, "run").click()
    wait.until(lambda d: "has-result" in d.find_element(By.ID, "try").get_attribute("class"))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs-body img[data-which=result]")) == 5)
    wait.until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#jobs-body img.thumb')].every(i => i.complete && i.naturalWidth)"))
    driver.save_screenshot(str(artifacts / "dashboard-result.png"))
    keyed = {urlsplit(r["url"]).path: {k.lower(): v for k, v in r["headers"].items()}.get("x-api-key")
             for r in sent_requests(driver) if "/api/" in r["url"]}
    seen = driver.execute_script("""
        const after = document.getElementById('after'), link = document.getElementById('download');
        return {seen: window.progressSeen, width: after.naturalWidth, height: after.naturalHeight,
                download: link.download, href: link.href, size: document.getElementById('result-size').textContent,
                bar: document.getElementById('bar').style.width,
                thumb: document.querySelector('#jobs-body img[data-which=result]').naturalWidth,
                rows: document.querySelectorAll('#jobs-body tr').length,
                sparklines: document.querySelectorAll('#pool-cards svg.sparkline polyline').length,
                charted: document.querySelector('[data-chart="jobs per minute"]').dataset.points,
                cards: document.getElementById('pool-cards').innerText};
    """)
    return keyed, {**seen, "console_errors": leave_page(driver)}


async def earlier_jobs(gw: Any, fakes: list[Any]) -> None:
    """A few finished jobs first, so the table, the sparklines and the charts have something to show."""
    for workflow in ("upscale-image", "remove-background", "upscale-image", "remove-background"):
        resp = await gw.client.post(f"/api/{workflow}", files={"imageFile": ("s.png", scene(90, 60), "image/png")})
        assert resp.status_code == 200
    for fake in fakes:
        fake.set_service_time(3.0)  # slow enough from here on to watch the bar move


async def test_try_it_shows_progress_to_100_and_the_result_at_its_size(fake_servers, tmp_path, browser, artifacts):
    fakes = await fake_servers(2, service_time=0.2)
    image = tmp_path / "photo.png"
    image.write_bytes(scene(120, 80))
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        await earlier_jobs(gw, fakes)
        keyed, seen = await asyncio.to_thread(try_it, browser, gw.url, image, artifacts)
        jobs = (await gw.client.get("/api/jobs/list")).json()["jobs"]
    assert jobs[0]["params"]["workflow"]["scale_by"] == 0.75  # the typed parameter from the form
    assert seen["rows"] == 5 and seen["sparklines"] >= 1 and int(seen["charted"]) >= 1
    # what the dispatcher knows of the fake servers: the upscale model left loaded, their VRAM
    assert "warm: 4x_NMKD-Siax_200k.pth" in seen["cards"] and seen["cards"].count("GiB free") == 2, seen["cards"]
    assert (seen["width"], seen["height"]) == (360, 240)
    assert seen["size"] == "120×80 → 360×240 px"
    assert seen["seen"][-1] == 100 and seen["bar"] == "100%"
    assert any(0 < value < 100 for value in seen["seen"]), seen["seen"]  # the bar moved on the way
    assert seen["download"] == "photo.upscale-remove-bg.png" and seen["href"].startswith("blob:")
    assert seen["thumb"] == 64  # the result's preview, scaled down on the gateway
    assert seen["console_errors"] == []
    assert (artifacts / "dashboard-result.png").stat().st_size > 10_000
    # the key goes with every call, the event stream and the images included (no EventSource, no <img src>)
    job_id = jobs[0]["job_id"]
    for path in ("/api/run/upscale-remove-bg", f"/api/jobs/{job_id}/events", f"/api/jobs/{job_id}/result",
                 f"/api/jobs/{job_id}/preview/result", "/api/jobs/list"):
        assert keyed.get(path) == API_KEY, (path, keyed)


# The page's own timeline code on a job that failed once, was placed by a reason, then finished.
TIMELINE_OF_A_RETRIED_JOB = """
const done = arguments[arguments.length - 1];
import('/dashboard/static/js/jobs.js').then((m) => done(m.timelineOf({
  job_id: 'j1', type: 'upscale-image', status: 'completed', attempt: 2, comfyui_instance: 'gpu-2',
  created_at: '2026-01-01T10:00:00.000Z', started_at: '2026-01-01T10:00:01.000Z',
  finished_at: '2026-01-01T10:00:09.000Z', queue_wait_seconds: 1.0, processing_time_seconds: 8.0,
  progress_percentage: 100, placement: {instance: 'gpu-2', reason: 'warm model, 0 ahead'},
  attempts_history: [{attempt: 1, instance: 'gpu-1', at: 1767261603.5, error: {message: 'socket lost'}}],
})));
"""


# The page's chart code on a timeline body: per-minute rates from 10-second buckets, gaps skipped.
CHART_SERIES = """
const done = arguments[arguments.length - 1];
import('/dashboard/static/js/charts.js').then((m) => {
  const s = m.chartSeries({span_seconds: 900, step_seconds: 10, points: [
    {at: '2026-01-01T10:00:00.000Z', finished: 0, failed: 0, p95_latency_ms: null, pending: 4, running: 2},
    {at: '2026-01-01T10:00:10.000Z', finished: 3, failed: 1, p95_latency_ms: 2500, pending: 1, running: 2}]});
  done([s.jobs.map((p) => p.v), s.p95.map((p) => p.v), s.queue.map((p) => p.v)]);
});
"""


# A server card when the gateway knows the server's warm models, VRAM and queue (placement's fields).
CARD_WITH_PLACEMENT = """
const done = arguments[arguments.length - 1];
import('/dashboard/static/js/pool.js').then((m) => {
  const box = document.createElement('div');
  new m.PoolPanel(box, document.createElement('div'), () => {}).render({'gpu-1': {
    healthy: true, circuit_breaker: 'closed', active_jobs: 1, total_jobs: 7, placement: {queued_here: 2,
    warm_models: ['4x_NMKD-Siax_200k.pth'], vram: {total_bytes: 24 * 1024 ** 3, free_bytes: 6 * 1024 ** 3}}}}, 0, []);
  done(box.innerText.replace(/\\s+/g, ' ').trim());
});
"""


# A file dropped on the drop zone, as a person dragging it from their desktop would.
DROP_A_FILE = """
const done = arguments[arguments.length - 1];
const canvas = Object.assign(document.createElement('canvas'), {width: 8, height: 6});
canvas.toBlob((blob) => {
  const files = new DataTransfer();
  files.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
  document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: files, bubbles: true}));
  const before = document.getElementById('before');
  before.decode().then(() => done({name: document.getElementById('file-name').textContent,
    width: before.naturalWidth, runnable: !document.getElementById('run').disabled}));
}, 'image/png');
"""


def cancel_from_table(driver: Any, url: str, job_id: str, artifacts: Path) -> dict[str, Any]:
    wait = open_dashboard(driver, url)
    row = f"#jobs-body tr[data-job='{job_id}']"
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, f"{row}[data-status=processing]"))).click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline li[data-step=running]"))
    steps = {li.get_attribute("data-step"): li.text for li in driver.find_elements(By.CSS_SELECTOR, "#timeline li")}
    driver.save_screenshot(str(artifacts / "dashboard-timeline.png"))
    driver.find_element(By.ID, "dialog-close").click()
    status_filter = Select(driver.find_element(By.CSS_SELECTOR, "#jobs select[name=status]"))
    status_filter.select_by_value("completed")
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))  # filtered out: it is still running
    status_filter.select_by_value("")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"{row} button.cancel"))[0].click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))
    card = "#pool-cards .server"
    driver.find_element(By.CSS_SELECTOR, f"{card} button.open-breaker").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"{card} .badge.open"))  # as the gateway reports it
    driver.find_element(By.CSS_SELECTOR, f"{card} button.close-breaker").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"{card} .badge.closed"))
    return {"steps": steps, "console_errors": leave_page(driver)}


async def test_a_running_job_is_cancelled_from_the_table(fake_servers, tmp_path, browser, artifacts):
    fakes = await fake_servers(1)
    fakes[0].hang_next(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        resp = await gw.client.post("/api/async/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        job_id = resp.json()["job_id"]
        await eventually(lambda: fakes[0].stats()["prompts_received"] == 1, what="the prompt to reach the server")
        seen = await asyncio.to_thread(cancel_from_table, browser, gw.url, job_id, artifacts)
        gone = await gw.client.get(f"/api/jobs/{job_id}/status")
        breakers = (await gw.client.get("/api/circuit-breakers")).json()["circuit_breakers"]
        await eventually(lambda: fakes[0].stats()["interrupted"] == 1, what="the prompt interrupted")
    assert list(seen["steps"]) == ["queued", "dispatched", "placement", "running"]
    assert "ahead" in seen["steps"]["placement"]  # the dispatcher's reason, e.g. "no model, 0 ahead"
    assert [b["state"] for b in breakers.values()] == ["closed"]  # opened from its card, then closed again
    assert gone.status_code == 404
    assert seen["console_errors"] == []


def page_parts(driver: Any, url: str) -> dict[str, Any]:
    wait = open_dashboard(driver, url)
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "#jobs-body tr[data-status=failed]"))).click()
    failed = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline li[data-step=failed]"))[0].text
    driver.find_element(By.ID, "dialog-close").click()
    scripts = {"retried": TIMELINE_OF_A_RETRIED_JOB, "series": CHART_SERIES, "card": CARD_WITH_PLACEMENT,
               "dropped": DROP_A_FILE}
    seen = {name: driver.execute_async_script(script) for name, script in scripts.items()}
    return {**seen, "failed": failed, "console_errors": leave_page(driver)}


async def test_the_page_shows_what_the_gateway_reports_when_it_has_it(fake_servers, tmp_path, browser):
    """Retries, placement reasons, warm models and VRAM, as the page's own modules render them."""
    fakes = await fake_servers(1)
    fakes[0].fail_next(1, "out of memory on the GPU")
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        resp = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        assert resp.status_code >= 500
        seen = await asyncio.to_thread(page_parts, browser, gw.url)
    assert "out of memory on the GPU" in seen["failed"]  # a real failed job's timeline says why
    retried = [(step["step"], step["detail"]) for step in seen["retried"]]
    assert retried == [("queued", "type upscale-image"), ("dispatched", "to gpu-1 after 1.00 s queued"),
                       ("attempt 1 failed", "on gpu-1: socket lost"), ("attempt 2", "on gpu-2"),
                       ("placement", "warm model, 0 ahead"), ("done", "in 8.00 s")]
    assert seen["series"] == [[0, 18], [2.5], [4, 1]]  # jobs/min, p95 s (none in the first bucket), queue
    assert seen["dropped"] == {"name": "dropped.png", "width": 8, "runnable": True}
    for shown in ("running 1", "queued 2", "done 7", "warm: 4x_NMKD-Siax_200k.pth", "VRAM", "6.0 GiB free"):
        assert shown in seen["card"], seen["card"]
    assert seen["console_errors"] == []


def with_keys(driver: Any, url: str, key: str) -> dict[str, Any]:
    driver.get(f"{url}/dashboard")
    wait = WebDriverWait(driver, 30)
    error = driver.find_element(By.ID, "error")
    wait.until(lambda d: error.is_displayed() and "API key" in error.text)
    before = {"error": error.text, "servers": len(driver.find_elements(By.CSS_SELECTOR, "#pool-cards .server"))}
    field = driver.find_element(By.ID, "api-key")
    field.send_keys(key)
    field.send_keys(Keys.TAB)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#workflow option[value=upscale-image]"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#pool-cards .server"))
    wait.until(lambda d: not error.is_displayed())
    driver.refresh()  # the key is kept for the browser session
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#jobs-body tr"))
    kept = driver.execute_script("return document.getElementById('api-key').value")
    leave_page(driver)  # the errors of a page opened without a key are its 401s: expected here
    return {"before": before, "kept": kept}


async def test_with_access_control_the_page_opens_and_reads_with_the_key_typed_into_it(fake_servers, tmp_path,
                                                                                      browser):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes), api_keys_file=write_keys(tmp_path / "keys.toml"))
    async with running_gateway(settings) as gw:
        resp = await gw.client.post("/api/upscale-image", files={"imageFile": ("a.png", png(), "image/png")},
                                    headers=auth("alice"))
        assert resp.status_code == 200
        seen = await asyncio.to_thread(with_keys, browser, gw.url, KEYS["admin"])
    assert "an API key is required" in seen["before"]["error"] and seen["before"]["servers"] == 0
    assert seen["kept"] == KEYS["admin"]
