"""What a workflow needs of a server, read from its graph: node classes and the model files it names.

A model file is the string value of a loader input named `*_name` (ComfyUI's convention:
`ckpt_name`, `lora_name`, `vae_name`, `model_name` of UpscaleModelLoader...). Some custom nodes load
weights of their own with no file input; they count as a model under their class name, so that
warm-model affinity knows them too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

# Node classes that load a model of their own (no file input names it).
SELF_LOADING_NODES = frozenset({"InspyrenetRembg"})


def is_model_input(name: str) -> bool:
    return name.endswith("_name")


class ModelRef(NamedTuple):
    """One model file a node names: `UpscaleModelLoader.model_name = 4x_NMKD-Siax_200k.pth`."""

    node_class: str
    input: str
    file: str

    def __str__(self) -> str:
        return f"{self.file} ({self.node_class}.{self.input})"


@dataclass(frozen=True)
class Needs:
    node_classes: frozenset[str]
    models: frozenset[ModelRef]

    @cached_property  # asked for every free server at every placement
    def warm_keys(self) -> frozenset[str]:
        """What has to be loaded on a server for this workflow to start without a model switch."""
        return frozenset({m.file for m in self.models} | (self.node_classes & SELF_LOADING_NODES))


def needs_of(graph: Mapping[str, Any]) -> Needs:
    classes: set[str] = set()
    models: set[ModelRef] = set()
    for node in graph.values():
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            continue
        cls = node["class_type"]
        classes.add(cls)
        for name, value in (node.get("inputs") or {}).items():
            if is_model_input(name) and isinstance(value, str) and value:
                models.add(ModelRef(cls, name, value))
    return Needs(frozenset(classes), frozenset(models))


def node_errors(graph: Mapping[str, Any], missing: Collection[str]) -> dict[str, list[dict[str, str]]]:
    """Per node id, what of `missing` (`Capabilities.missing`'s words) that node asks for."""
    found: dict[str, list[dict[str, str]]] = {}
    for node_id, node in graph.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            continue
        cls = node["class_type"]
        errors = [{"field": "class_type", "reason": "missing_node_type", "message": f"node {cls}"}] \
            if f"node {cls}" in missing else []
        for name, value in (node.get("inputs") or {}).items():
            wanted = f"model {ModelRef(cls, name, value)}" if isinstance(value, str) else ""
            if wanted in missing:
                errors.append({"field": name, "reason": "value_not_in_list", "message": wanted})
        if errors:
            found[str(node_id)] = errors
    return found
