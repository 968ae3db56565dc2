"""Workflows as data: one JSON file each, an API-format graph plus a small manifest.

The manifest says which node takes the input image and how (`base64` into ETN_LoadImageBase64, or
`upload` through /upload/image into core LoadImage), which node holds the result, and which graph
inputs a caller may set as typed parameters.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ..errors import InvalidInput
from .needs import Needs, needs_of

InputMode = Literal["base64", "upload"]
BASE64_LOADER = "ETN_LoadImageBase64"
UPLOAD_LOADER = "LoadImage"


@dataclass(frozen=True)
class Parameter:
    name: str
    node: str
    input: str
    type: Literal["float", "int", "string", "bool"]
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None

    def coerce(self, raw: Any) -> Any:
        try:
            if self.type == "float":
                value: Any = float(raw)
                if not math.isfinite(value):
                    raise ValueError
            elif self.type == "int":
                value = int(raw)
            elif self.type == "bool":
                value = str(raw).lower() in ("1", "true", "yes", "on")
            else:
                value = str(raw)
        except (TypeError, ValueError):
            raise InvalidInput(f"parameter {self.name!r} must be a {self.type}", parameter=self.name) from None
        if self.min is not None and value < self.min:
            raise InvalidInput(f"parameter {self.name!r} must be >= {self.min}", parameter=self.name)
        if self.max is not None and value > self.max:
            raise InvalidInput(f"parameter {self.name!r} must be <= {self.max}", parameter=self.name)
        if self.choices is not None and value not in self.choices:
            raise InvalidInput(f"parameter {self.name!r} must be one of {list(self.choices)}", parameter=self.name)
        return value


@dataclass(frozen=True)
class Workflow:
    name: str
    description: str
    graph: Mapping[str, Any]
    input_node: str
    input_field: str
    input_mode: InputMode
    result_node: str
    parameters: Mapping[str, Parameter] = field(default_factory=dict)
    estimated_seconds: tuple[int, int] = (10, 60)

    def with_input_mode(self, mode: InputMode) -> Workflow:
        """The same workflow taking its image the other way (the loaders share their outputs)."""
        if mode == self.input_mode:
            return self
        graph = copy.deepcopy(dict(self.graph))
        graph[self.input_node] = {
            "class_type": UPLOAD_LOADER if mode == "upload" else BASE64_LOADER,
            "inputs": {"image": ""},
        }
        return Workflow(self.name, self.description, graph, self.input_node, "image", mode,
                        self.result_node, self.parameters, self.estimated_seconds)

    def needs(self, params: Mapping[str, Any] | None = None) -> Needs:
        """The node classes and model files a run with these parameters needs of its server."""
        return needs_of(self.render("", "", params or {}))

    def validate_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Typed, checked values for the parameters given; unknown names are refused."""
        unknown = set(raw) - set(self.parameters)
        if unknown:
            raise InvalidInput(f"unknown parameter(s) for {self.name}: {sorted(unknown)}",
                               allowed=sorted(self.parameters))
        return {name: self.parameters[name].coerce(value) for name, value in raw.items()}

    def render(self, image_value: str, run_tag: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The graph for one run: image injected, parameters set, every output file prefix unique.

        The unique prefix (of SaveImage and every other node with a `filename_prefix`: animated
        images, VHS videos, audio) keeps concurrent jobs' files apart and defeats ComfyUI's output cache."""
        graph = copy.deepcopy(dict(self.graph))
        graph[self.input_node]["inputs"][self.input_field] = image_value
        for name, value in params.items():
            p = self.parameters[name]
            graph[p.node]["inputs"][p.input] = value
        for node in graph.values():
            if node.get("class_type") == "SaveImage" or "filename_prefix" in (node.get("inputs") or {}):
                base = node["inputs"].get("filename_prefix", "gateway")
                node["inputs"]["filename_prefix"] = f"{base}_{run_tag}"
        return graph


def _seconds_range(value: Any) -> tuple[int, int]:
    """A manifest's `estimated_seconds`: [low, high] (a TypeError otherwise, reported as a bad manifest)."""
    low, high = value
    return int(low), int(high)


def parse_workflow(data: Mapping[str, Any], source: str = "<memory>") -> Workflow:
    try:
        graph = data["graph"]
        inp, result = data["input"], data["result"]
        params = {
            name: Parameter(name=name, node=str(p["node"]), input=p["input"], type=p.get("type", "string"),
                            default=p.get("default"), min=p.get("min"), max=p.get("max"),
                            choices=tuple(p["choices"]) if p.get("choices") else None)
            for name, p in data.get("parameters", {}).items()
        }
        wf = Workflow(
            name=data["name"], description=data.get("description", ""), graph=graph,
            input_node=str(inp["node"]), input_field=inp.get("field", "image"),
            input_mode=inp.get("mode", "base64"), result_node=str(result["node"]), parameters=params,
            estimated_seconds=_seconds_range(data.get("estimated_seconds", (10, 60))),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"workflow {source}: missing or malformed field {exc}") from exc
    for node in (wf.input_node, wf.result_node, *(p.node for p in params.values())):
        if node not in graph:
            raise ValueError(f"workflow {source}: node {node!r} is not in the graph")
    if wf.input_mode not in ("base64", "upload"):
        raise ValueError(f"workflow {source}: input mode must be base64 or upload")
    return wf


class WorkflowRegistry:
    """The workflows this gateway serves, by name: the built-ins plus any JSON files of WORKFLOWS_DIR."""

    def __init__(self, workflows: Iterable[Workflow]) -> None:
        self._by_name = {wf.name: wf for wf in workflows}

    @classmethod
    def load(cls, extra_dir: Path | None = None, input_mode: str = "manifest") -> WorkflowRegistry:
        texts = [(f.name, f.read_text()) for f in resources.files(__package__).joinpath("builtin").iterdir()
                 if f.name.endswith(".json")]
        if extra_dir is not None:
            texts += [(str(p), p.read_text()) for p in sorted(Path(extra_dir).glob("*.json"))]
        workflows = [parse_workflow(json.loads(text), source) for source, text in texts]
        if input_mode in ("base64", "upload"):
            workflows = [wf.with_input_mode(input_mode) for wf in workflows]  # type: ignore[arg-type]
        return cls(workflows)

    def get(self, name: str) -> Workflow | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name
