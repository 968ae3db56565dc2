"""Idempotency-Key: a client that retries a task request after a lost answer gets the same job.

The key names the job for IDEMPOTENCY_TTL; the same key with a different request (another image,
task or parameter) is refused with 422 rather than answered with the wrong job.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ..errors import InvalidInput
from ..jobs.model import Job

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_SANE_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,200}")


class IdempotencyKeyReused(InvalidInput):
    status_code = 422
    code = "idempotency_key_reused"


def checked_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _SANE_KEY.fullmatch(key):
        raise InvalidInput(f"{HEADER} must be 1-200 characters of letters, digits and . _ : -", header=HEADER)
    return key


def fingerprint(task: str, params: dict[str, Any], image: bytes) -> str:
    """What makes two requests the same request: task, parameters and image bytes."""
    digest = hashlib.sha256(task.encode())
    digest.update(json.dumps(params, sort_keys=True).encode())
    digest.update(image)
    return digest.hexdigest()


def check_same_request(job: Job, expected: str) -> None:
    if job.params.get("request_fingerprint") != expected:
        raise IdempotencyKeyReused(f"this {HEADER} was used for a different request (job {job.id})",
                                   job_id=job.id)
