"""One exception tree for the whole gateway; `api/errors.py` maps it to HTTP in one place.

GatewayError
├── InvalidInput                 400  the request is wrong (missing file, bad parameter)
│   ├── UnsupportedMediaType     415  a file that is not an image we accept
│   ├── PayloadTooLarge          413  upload or pixel count over the configured cap
│   ├── DestinationRefused       422  a callback_url the webhook policy does not allow
│   ├── InvalidWorkflow          422  a submitted graph that cannot run (v2)
│   │   └── WorkflowFormatUi     422  a UI export instead of an API-format graph
│   ├── MissingAsset             422  a core/ASSET reference that names no asset
│   ├── MetadataInvalid          422  job labels that are not a small map of short strings
│   └── IdempotencyKeyReuse      422  a single-use Idempotency-Key presented again (v2)
├── HashMismatch                 409  uploaded bytes that are not the hash the client declared
├── Unauthorized                 401  no API key, or an unknown one
├── Forbidden                    403  a key without the role the route needs
├── TooManyRequests              429  over a limit; Retry-After says when to come back
│   ├── QueueFull                     MAX_QUEUE_DEPTH, or the key's max_queued_jobs
│   └── RateLimited                   the key's requests_per_minute
├── NotFound                     404  an unknown job, workflow, instance or asset
│   ├── JobNotFound
│   └── BlobNotFound                  no stored bytes with that hash
├── JobNotFinished               409  a result asked for before the job ended
├── Gone                         410  something that existed and is no more
│   └── ResultExpired                 a result or output past RESULT_TTL
├── RangeNotSatisfiable          416  a Range header outside the file, malformed, or several ranges
├── NoCapableServer              422  no configured server has the nodes or models the workflow needs
├── ServiceUnavailable           503  no healthy server, or the gateway is draining
│   └── StorageError             503  the job store or blob storage failed (database gone, Redis down)
│       └── InsufficientStorage  507  the disk is full
└── UpstreamError                     something went wrong at a ComfyUI server
    ├── UpstreamUnavailable           refused, reset, timeout, 5xx, socket lost and no history: retry elsewhere
    ├── WorkflowRejected              400 (or 200 with node_errors) at submit: never retried
    └── WorkflowFailed                execution_error / execution_interrupted: never retried
        └── ResultTooLarge            an output past MAX_RESULT_BYTES / MAX_RESULT_PIXELS: never retried
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status_code = 500
    code = "gateway_error"

    def __init__(self, message: str, /, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        body.update({k: v for k, v in self.details.items() if v is not None})
        return body


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
