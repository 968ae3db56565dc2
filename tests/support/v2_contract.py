"""The Comfy API v2 schema models shipped in the comfy-api-proxy wheel, made usable as validators.

That wheel's models are generated from the contract's OpenAPI file by a generator that drops
`nullable: true` (its own docstring says so): a queued job's `started_at: null` would fail them.
The SDK's models are generated from the same contract with nullability kept. So each proxy model
is used as it is, except that a field becomes nullable where, and only where, the SDK's model of
the same name allows null there; `relaxed_fields` lists those, and a test holds it to the SDK.
"""

from __future__ import annotations

from typing import Any

import comfy_low.models as spec_models
from comfy_api_proxy import schemas
from pydantic import AwareDatetime, BaseModel, create_model

Output = create_model("Output", __base__=schemas.Output, hash=(str | None, ...))
Asset = create_model("Asset", __base__=schemas.Asset, hash=(str | None, ...))
Job = create_model(
    "Job", __base__=schemas.Job,
    started_at=(AwareDatetime | None, ...), completed_at=(AwareDatetime | None, ...),
    queue_position=(int | None, ...), progress=(schemas.Progress | None, ...), error=(schemas.JobError | None, ...),
    metrics=(dict[str, int | None] | None, None), outputs=(list[Output], ...),  # type: ignore[valid-type]
)

MODELS: dict[str, type[BaseModel]] = {
    "job": Job, "asset": Asset, "output": Output, "error": schemas.ErrorEnvelope,
    "status_event": schemas.StatusEvent, "progress": schemas.Progress,
}


def relaxed_fields() -> dict[str, set[str]]:
    """Per model, the fields made nullable here."""
    return {name: {f for f, info in model.model_fields.items()
                   if info.annotation != getattr(schemas, name).model_fields[f].annotation}
            for name, model in (("Job", Job), ("Asset", Asset), ("Output", Output))}


def nullable_in_spec(model_name: str, field: str) -> bool:
    """Whether the SDK's model (the same contract, nullability kept) allows null in `field`."""
    return "None" in repr(getattr(spec_models, model_name).model_fields[field].annotation)


def validate(kind: str, body: Any) -> BaseModel:
    return MODELS[kind].model_validate(body)
