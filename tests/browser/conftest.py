from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.browser import artifacts_dir, chromium, chromium_missing


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = chromium_missing()
    if missing and os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {missing}")  # .ci/run installs them
    if missing:
        pytest.skip(missing)
    with chromium() as driver:
        yield driver


@pytest.fixture
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artifacts_dir(tmp_path_factory.getbasetemp() / "artifacts")
