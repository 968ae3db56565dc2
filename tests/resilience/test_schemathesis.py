"""Property-based requests from the OpenAPI document against a real gateway (the CLI, in front of a
fake ComfyUI process, with API keys), sent with an admin key: no 5xx ever; every 4xx is JSON with an
`error` field; every answer carries an X-Request-ID. Bounded to fit CI: a few examples per operation
and mode, and a wall-clock budget."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from support.keys import auth, write_keys
from support.processes import processes, start_fake, start_gateway

pytestmark = pytest.mark.slow

EXAMPLES_PER_MODE = 8
BUDGET_S = 40.0


@dataclass
class Findings:
    calls: int = 0
    unauthorized: int = 0
    problems: list[str] = field(default_factory=list)

    def check(self, method: str, path: str, status: int, headers: dict[str, str], text: str) -> None:
        self.calls += 1
        self.unauthorized += status == 401
        where = f"{method} {path} -> {status}"
        if status >= 500:
            self.problems.append(f"{where}: server error {text[:200]}")
        if not headers.get("x-request-id"):
            self.problems.append(f"{where}: no X-Request-ID")
        if 400 <= status < 600:
            if not headers.get("content-type", "").startswith("application/json"):
                self.problems.append(f"{where}: not JSON ({headers.get('content-type')}): {text[:120]}")
            elif method != "HEAD" and '"error"' not in text:  # a HEAD answer has headers, never a body
                self.problems.append(f"{where}: no error field: {text[:200]}")


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("schemathesis") / "data"
    with processes() as procs:
        fake = start_fake()
        procs.append(fake)
        data.mkdir(parents=True)
        keys = write_keys(data / "keys.toml")
        gw = start_gateway(data, fake.host_port, max_upload_bytes=256 * 1024, max_image_pixels=1_000_000,
                           job_timeout=5_000, queue_timeout=5_000, api_keys_file=keys)
        procs.append(gw)
        yield gw.url


def test_no_operation_answers_5xx_or_a_non_json_error(gateway_url):
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    findings = Findings()
    deadline = time.monotonic() + BUDGET_S
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, "the OpenAPI document lost its operations"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if time.monotonic() > deadline:
                break

            @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck), print_blob=False)
            @given(case=operation.as_strategy(generation_mode=mode))
            def exercise(case) -> None:
                response = case.call(base_url=gateway_url, headers=auth("admin"), timeout=10)
                headers = {k.lower(): v for k, v in response.headers.items()}
                headers = {k: (v[0] if isinstance(v, list) else v) for k, v in headers.items()}
                where = case.formatted_path + (f" query={case.query!r}" if case.query else "")
                findings.check(case.method, where, response.status_code, headers, response.text)

            try:
                exercise()
            except Unsatisfiable:  # nothing can be made invalid in an operation without inputs
                assert mode is GenerationMode.NEGATIVE, operation.label
    print(f"\nschemathesis: {findings.calls} requests over {len(operations)} operations, "
          f"{len(findings.problems)} problems")
    assert findings.calls >= 100
    assert findings.unauthorized == 0, "the admin key was not accepted"
    assert not findings.problems, "\n".join(sorted(set(findings.problems))[:30])
