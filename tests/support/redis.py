"""The Redis server the scale-out tests use (REDIS_URL; `.ci/run` starts one where none runs)."""

from __future__ import annotations

import os

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
