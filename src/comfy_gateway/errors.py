"""One exception tree for the whole gateway, and with it the one table of HTTP answers.

Each class carries its HTTP status, its `code`, and whether its message may be shown to clients;
`api/errors.py` turns a raised error into JSON from these, and a failed job's stored error (which
keeps only the `code`) is answered with the status `status_for_code` finds in the same tree.

GatewayError                     status  code
├── InvalidInput                 400  invalid_input           the request is wrong (missing file, bad parameter)
│   ├── UnsupportedMediaType     415  unsupported_media_type  a file that is not an image we accept
│   ├── PayloadTooLarge          413  payload_too_large       upload or pixel count over the configured cap
│   ├── DestinationRefused       422  destination_refused     a callback_url the webhook policy does not allow
│   ├── InvalidWorkflow          422  invalid_workflow        a submitted graph that cannot run (v2)
│   │   └── WorkflowFormatUi     422  workflow_format_ui      a UI export instead of an API-format graph
│   ├── MissingAsset             422  missing_asset           a core/ASSET reference that names no asset
│   ├── MetadataInvalid          422  metadata_invalid        job labels that are not a small map of short strings
│   └── IdempotencyKeyReuse      422  idempotency_key_reuse   a single-use Idempotency-Key presented again (v2)
├── HashMismatch                 409  hash_mismatch           uploaded bytes that are not the hash the client declared
├── Unauthorized                 401  unauthorized            no API key, or an unknown one
├── Forbidden                    403  forbidden               a key without the role the route needs
├── TooManyRequests              429  too_many_requests       over a limit; Retry-After says when to come back
│   ├── QueueFull                429  queue_full              MAX_QUEUE_DEPTH, or the key's max_queued_jobs
│   └── RateLimited              429  rate_limited            the key's requests_per_minute
├── NotFound                     404  not_found               an unknown job, workflow, instance or asset
│   ├── JobNotFound              404  job_not_found
│   └── BlobNotFound             404  blob_not_found          no stored bytes with that hash
├── JobNotFinished               409  job_not_finished        a result asked for before the job ended
├── Gone                         410  gone                    something that existed and is no more
│   └── ResultExpired            410  result_expired          a result or output past RESULT_TTL
├── RangeNotSatisfiable          416  range_not_satisfiable   a Range header outside the file, malformed, or several
├── NoCapableServer              422  no_capable_server       no configured server has the nodes or models needed
├── ServiceUnavailable           503  service_unavailable     no healthy server, or the gateway is draining
│   ├── QueueTimeout             503  queue_timeout           no server took the job within QUEUE_TIMEOUT
│   ├── Withdrawn                503  no_server               a sync request's job could not start
│   └── StorageError             503  store_unavailable       the job store or blob storage failed (Redis down...)
│       └── InsufficientStorage  507  insufficient_storage    the disk is full
├── JobTimedOut                  504  job_timed_out           the job ran past JOB_TIMEOUT
├── SyncTimeout                  504  sync_timeout            a sync request stopped waiting; the job goes on
├── InternalError                500  internal_error          a bug: logged with a reference, never shown
└── UpstreamError                502  upstream_error          something went wrong at a ComfyUI server
    ├── UpstreamUnavailable      503  upstream_unavailable    refused, reset, timeout, 5xx, socket lost: retry elsewhere
    ├── WorkflowRejected         422  workflow_rejected       400 (or 200 with node_errors) at submit: never retried
    └── WorkflowFailed           502  workflow_failed         execution_error / execution_interrupted: never retried
        └── ResultTooLarge       502  result_too_large        an output past MAX_RESULT_BYTES / _PIXELS: never retried
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

# Failed jobs whose error code is in no class (older records) answer as a server-side failure.
UNKNOWN_FAILURE_STATUS = 502


class GatewayError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "gateway_error"
    _by_code: ClassVar[dict[str, type[GatewayError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        GatewayError._by_code.setdefault(cls.code, cls)

    def __init__(self, message: str, /, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        body.update({k: v for k, v in self.details.items() if v is not None})
        return body

    def as_job_error(self, **extra: Any) -> dict[str, Any]:
        """How a job that failed with this error records it: message, code and details."""
        body = {"message": self.message, "code": self.code, **self.details, **extra}
        return {k: v for k, v in body.items() if v is not None}


GatewayError._by_code[GatewayError.code] = GatewayError


def status_for_code(code: str) -> int:
    """The HTTP status of the error class with this `code`, from the tree above."""
    cls = GatewayError._by_code.get(code)
    return UNKNOWN_FAILURE_STATUS if cls is None else cls.status_code


class InvalidInput(GatewayError):
    status_code = 400
    code = "invalid_input"


class UnsupportedMediaType(InvalidInput):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(InvalidInput):
    status_code = 413
    code = "payload_too_large"


class DestinationRefused(InvalidInput):
    status_code = 422
    code = "destination_refused"


class Unauthorized(GatewayError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, challenge: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.challenge = challenge  # the WWW-Authenticate header


class Forbidden(GatewayError):
    status_code = 403
    code = "forbidden"


class TooManyRequests(GatewayError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class QueueFull(TooManyRequests):
    code = "queue_full"


class RateLimited(TooManyRequests):
    code = "rate_limited"


class NotFound(GatewayError):
    status_code = 404
    code = "not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class InvalidWorkflow(InvalidInput):
    status_code = 422
    code = "invalid_workflow"


class WorkflowFormatUi(InvalidWorkflow):
    code = "workflow_format_ui"


class MissingAsset(InvalidInput):
    status_code = 422
    code = "missing_asset"


class MetadataInvalid(InvalidInput):
    status_code = 422
    code = "metadata_invalid"


class IdempotencyKeyReuse(InvalidInput):
    status_code = 422
    code = "idempotency_key_reuse"


class HashMismatch(GatewayError):
    status_code = 409
    code = "hash_mismatch"


class BlobNotFound(NotFound):
    code = "blob_not_found"


class JobNotFinished(GatewayError):
    status_code = 409
    code = "job_not_finished"


class NoCapableServer(GatewayError):
    """Every configured server lacks a node class or model file the job needs: it could never run."""

    status_code = 422
    code = "no_capable_server"


class Gone(GatewayError):
    status_code = 410
    code = "gone"


class ResultExpired(Gone):
    code = "result_expired"


class RangeNotSatisfiable(GatewayError):
    status_code = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, size: int, **details: Any) -> None:
        super().__init__(message, size=size, **details)
        self.size = size  # for `Content-Range: bytes */size`


class ServiceUnavailable(GatewayError):
    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, retry_after: int = 5, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class QueueTimeout(ServiceUnavailable):
    code = "queue_timeout"


class Withdrawn(ServiceUnavailable):
    code = "no_server"


class JobTimedOut(GatewayError):
    status_code = 504
    code = "job_timed_out"


class SyncTimeout(GatewayError):
    status_code = 504
    code = "sync_timeout"


class InternalError(GatewayError):
    """An unexpected exception, as clients see it: a generic message and a reference to the log line
    that holds the real one. Its text never reaches a client."""

    status_code = 500
    code = "internal_error"

    def __init__(self, reference: str | None = None) -> None:
        self.reference = reference or uuid.uuid4().hex[:16]
        super().__init__(f"internal error (reference {self.reference})", reference=self.reference)


class StorageError(ServiceUnavailable):
    """The job store or the blob storage failed: nothing is wrong with the request, retry it later.

    Raised by the stores in place of their driver's errors, so the job path can tell a storage fault
    (an accepted job waits for the storage to come back) from a bug."""

    code = "store_unavailable"


class InsufficientStorage(StorageError):
    status_code = 507
    code = "insufficient_storage"


class UpstreamError(GatewayError):
    status_code = 502
    code = "upstream_error"
    retryable = False


class UpstreamUnavailable(UpstreamError):
    """The server, not the workflow, failed: the job may run elsewhere."""

    status_code = 503
    code = "upstream_unavailable"
    retryable = True


class WorkflowRejected(UpstreamError):
    """ComfyUI refused the graph at submit time (validation)."""

    status_code = 422
    code = "workflow_rejected"


class WorkflowFailed(UpstreamError):
    """The graph ran and a node failed, or the run was interrupted."""

    code = "workflow_failed"


class ResultTooLarge(WorkflowFailed):
    """The workflow made an output past MAX_RESULT_BYTES or MAX_RESULT_PIXELS: it would be as large
    on any server, so it is not run again."""

    code = "result_too_large"
