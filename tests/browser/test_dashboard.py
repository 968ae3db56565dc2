"""The dashboard in a real headless Chromium, used as a person would: submit, watch, compare, cancel.

Selenium's calls block, so each browser session runs in a worker thread while the gateway and the
fake servers keep serving on the test's event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

from support.browser import console_errors
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png, scene
from support.waiting import eventually

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
    driver.find_element(By.ID, "file").send_keys(str(image))
    driver.execute_script(WATCH_PROGRESS)
    driver.find_element(By.ID, "run").click()
    wait.until(lambda d: "has-result" in d.find_element(By.ID, "try").get_attribute("class"))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs-body img[data-which=result]")) == 5)
    wait.until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#jobs-body img.thumb')].every(i => i.complete && i.naturalWidth)"))
    driver.save_screenshot(str(artifacts / "dashboard-result.png"))
    return driver.execute_script("""
        const after = document.getElementById('after'), link = document.getElementById('download');
        return {seen: window.progressSeen, width: after.naturalWidth, height: after.naturalHeight,
                download: link.download, href: link.href, size: document.getElementById('result-size').textContent,
                bar: document.getElementById('bar').style.width,
                thumb: document.querySelector('#jobs-body img[data-which=result]').naturalWidth,
                rows: document.querySelectorAll('#jobs-body tr').length,
                sparklines: document.querySelectorAll('#pool-cards svg.sparkline polyline').length};
    """)


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
        seen = await asyncio.to_thread(try_it, browser, gw.url, image, artifacts)
        jobs = (await gw.client.get("/api/jobs/list")).json()["jobs"]
    assert jobs[0]["params"]["workflow"]["scale_by"] == 0.75  # the typed parameter from the form
    assert seen["rows"] == 5 and seen["sparklines"] >= 1
    assert (seen["width"], seen["height"]) == (360, 240)
    assert seen["size"] == "120×80 → 360×240 px"
    assert seen["seen"][-1] == 100 and seen["bar"] == "100%"
    assert any(0 < value < 100 for value in seen["seen"]), seen["seen"]  # the bar moved on the way
    assert seen["download"] == "photo.upscale-remove-bg.png" and seen["href"].startswith("blob:")
    assert seen["thumb"] == 64  # the result's preview, scaled down on the gateway
    assert console_errors(browser) == []
    assert (artifacts / "dashboard-result.png").stat().st_size > 10_000


def cancel_from_table(driver: Any, url: str, job_id: str, artifacts: Path) -> dict[str, Any]:
    wait = open_dashboard(driver, url)
    row = f"#jobs-body tr[data-job='{job_id}']"
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, f"{row}[data-status=processing]"))).click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline li[data-step=running]"))
    steps = [li.get_attribute("data-step") for li in driver.find_elements(By.CSS_SELECTOR, "#timeline li")]
    driver.save_screenshot(str(artifacts / "dashboard-timeline.png"))
    driver.find_element(By.ID, "dialog-close").click()
    driver.find_element(By.CSS_SELECTOR, f"{row} button.cancel").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))
    return {"steps": steps}


async def test_a_running_job_is_cancelled_from_the_table(fake_servers, tmp_path, browser, artifacts):
    fakes = await fake_servers(1)
    fakes[0].hang_next(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        resp = await gw.client.post("/api/async/upscale-image", files={"imageFile": ("a.png", png(), "image/png")})
        job_id = resp.json()["job_id"]
        await eventually(lambda: fakes[0].stats()["prompts_received"] == 1, what="the prompt to reach the server")
        seen = await asyncio.to_thread(cancel_from_table, browser, gw.url, job_id, artifacts)
        gone = await gw.client.get(f"/api/jobs/{job_id}/status")
        await eventually(lambda: fakes[0].stats()["interrupted"] == 1, what="the prompt interrupted")
    assert seen["steps"] == ["queued", "dispatched", "running"]
    assert gone.status_code == 404
    assert console_errors(browser) == []
