"""A caller's own API-format graph as a job type, beside the registry's named workflows.

The graph comes with the job. Where a filename would go it may hold a `core/ASSET` reference,
`{"__type": "core/ASSET", "info": {"id": ..., "hash": ..., "file_path": ...}}`; a run replaces
each with the name its file got on the server the attempt runs on.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import InvalidWorkflow, MissingAsset, WorkflowFormatUi

GRAPH_JOB_TYPE = "api-graph"
ASSET_TYPE = "core/ASSET"
_UI_KEYS = ("nodes", "links")
_OUTPUT_PREFIX_NODES = frozenset({"SaveImage", "SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveVideo", "SaveAudio"})


def is_asset_ref(value: Any) -> bool:
    return isinstance(value, dict) and value.get("__type") == ASSET_TYPE


def checked_graph(graph: Any) -> dict[str, Any]:
    """`graph` if it looks like an API-format graph: node id -> {class_type, inputs}."""
    if not isinstance(graph, dict) or not graph:
        raise InvalidWorkflow("'workflow' must be a non-empty API-format graph (node id -> node)")
    if all(k in graph for k in _UI_KEYS):
        raise WorkflowFormatUi("this is a UI-export graph; export the workflow in API format instead")
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) \
                or not isinstance(node.get("inputs", {}), dict):
            raise InvalidWorkflow(f"node {str(node_id)[:40]!r} needs a 'class_type' string and an 'inputs' object",
                                  node_id=str(node_id)[:40])
    return graph


def asset_ids(graph: Mapping[str, Any]) -> list[str]:
    """The asset ids the graph's references name, each once, in order (MissingAsset if malformed)."""
    found: dict[str, None] = {}
    for ref in _refs(graph):
        info = ref.get("info")
        asset_id = info.get("id") if isinstance(info, dict) else None
        if not isinstance(asset_id, str) or not asset_id:
            raise MissingAsset("a core/ASSET reference needs 'info.id', the asset's id", missing_ids=[])
        found[asset_id] = None
    return list(found)


def _refs(value: Any) -> Iterator[dict[str, Any]]:
    if is_asset_ref(value):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def render_graph(graph: Mapping[str, Any], names: Mapping[str, str], run_tag: str) -> dict[str, Any]:
    """The graph for one run: each reference replaced by its file's name on the server, every save
    node's filename prefix made unique (so concurrent jobs' files never collide or come from cache)."""
    rendered: dict[str, Any] = _substitute(copy.deepcopy(dict(graph)), names)
    for node in rendered.values():
        inputs = node.get("inputs") or {}
        if node.get("class_type") in _OUTPUT_PREFIX_NODES and isinstance(inputs.get("filename_prefix", ""), str):
            inputs["filename_prefix"] = f"{inputs.get('filename_prefix') or 'ComfyUI'}_{run_tag}"
    return rendered


def _substitute(value: Any, names: Mapping[str, str]) -> Any:
    if is_asset_ref(value):
        return names[value["info"]["id"]]
    if isinstance(value, dict):
        return {k: _substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, names) for v in value]
    return value
