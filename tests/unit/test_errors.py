"""One error table: a raised error and a failed job with the same code answer with the same status."""

from __future__ import annotations

import json

import pytest

from comfy_gateway import errors
from comfy_gateway.api.views import failure_response
from comfy_gateway.errors import GatewayError, InternalError, status_for_code
from comfy_gateway.jobs.model import Job, JobState


def _tree(cls: type[GatewayError]) -> list[type[GatewayError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _tree(child))]


CLASSES = [c for c in _tree(GatewayError) if c.__module__ == errors.__name__]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_code_names_one_status(cls: type[GatewayError]) -> None:
    assert status_for_code(cls.code) == cls.status_code
    failed = Job(id="j", type="t", state=JobState.FAILED, error={"message": "m", "code": cls.code})
    assert failure_response(failed).status_code == cls.status_code


def test_codes_are_unique_and_unknown_ones_are_a_server_failure() -> None:
    codes = [c.code for c in CLASSES]
    assert len(codes) == len(set(codes))
    assert status_for_code("no-such-code") == 502


def test_an_internal_error_says_only_its_reference() -> None:
    internal = InternalError()
    body = internal.as_job_error(instance="gpu-1")
    assert body == {"message": f"internal error (reference {internal.reference})", "code": "internal_error",
                    "reference": internal.reference, "instance": "gpu-1"}
    assert InternalError("req-7").to_dict()["reference"] == "req-7"


def test_a_failed_job_answer_carries_its_stored_error_only() -> None:
    failed = Job(id="j", type="t", state=JobState.FAILED,
                 error=InternalError("ref-1").as_job_error())
    answer = failure_response(failed)
    assert answer.status_code == 500
    assert json.loads(bytes(answer.body))["error"] == "internal error (reference ref-1)"
