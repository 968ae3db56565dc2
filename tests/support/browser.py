"""A real headless Chromium (Debian's chromium + chromedriver) driven through Selenium."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1100",
         "--disable-dev-shm-usage")


def chromium_missing() -> str | None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    return f"not installed: {', '.join(missing)} (apt-get install chromium chromium-driver)" if missing else None


@contextmanager
def chromium() -> Iterator[Any]:
    """A fresh browser with its own profile; its console log is readable with get_log("browser")."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def leave_page(driver: Any) -> list[dict[str, Any]]:
    """The page's console errors so far; then a blank page, so no refresh runs into a stopped gateway."""
    errors = console_errors(driver)
    driver.get("about:blank")
    return errors


def sent_requests(driver: Any) -> list[dict[str, Any]]:
    """The requests the page sent since the last call, each with its url, method and headers."""
    sent = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            sent.append(message["params"]["request"])
    return sent


def artifacts_dir(default: Path) -> Path:
    """Where screenshots go: $ARTIFACTS when set (CI keeps it), else under the test's basetemp."""
    folder = Path(os.environ.get("ARTIFACTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def svg_to_png(driver: Any, svg: Path, png: Path) -> Path:
    """The picture an SVG file draws, as Chromium renders it, cropped to the picture."""
    from selenium.webdriver.common.by import By

    page = svg.with_suffix(".html")
    page.write_text(f'<html><body style="margin:0"><img src="{svg.name}"></body></html>', encoding="utf-8")
    driver.get(page.resolve().as_uri())
    driver.find_element(By.TAG_NAME, "img").screenshot(str(png))
    return png
