"""Node class descriptions: input/output types, `/object_info` rendering, value coercion.

A `NodeSpec` is pure data plus the function that runs the node; the functions themselves
live in `nodes.py`. Values flowing between nodes are Pillow images (IMAGE: RGB or RGBA,
MASK: mode "L") or small objects such as an upscale model description.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})


class NodeContext(Protocol):
    """What a running node may use. Methods are called from a worker thread."""

    prompt: Mapping[str, Any]
    extra_data: Mapping[str, Any]

    def progress(self, value: int, total: int) -> None:
        """Report a progress step (sends `progress`); raises ExecutionInterrupted when asked to stop."""

    def check_interrupted(self) -> None:
        """Raise ExecutionInterrupted if an interrupt was requested."""

    def next_output_path(self, folder_type: str, filename_prefix: str, ext: str = "png") -> tuple[Path, Any]:
        """Where to write the next file for a prefix; returns (path, StoredFile)."""

    def input_path(self, name: str) -> Path | None:
        """Path of an input file, or None."""


@dataclass(frozen=True)
class NodeOutput:
    """Output values by slot, and the UI payload (`executed.output`) for output nodes."""

    values: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None


@dataclass(frozen=True)
class InputSpec:
    """One required input. `choices` is set for combos; `choices_from_inputs` lists the input dir."""

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    choices: tuple[str, ...] = ()
    choices_from_inputs: bool = False
    v3: bool = False

    @property
    def is_link(self) -> bool:
        return self.type not in WIDGET_TYPES

    def coerce(self, value: Any) -> Any:
        """Convert a literal widget value the way ComfyUI does before range checks."""
        if self.type == "FLOAT":
            return float(value)
        if self.type == "INT":
            return int(value)
        if self.type == "STRING":
            return str(value)
        if self.type == "BOOLEAN":
            return bool(value)
        return value

    def wire_config(self, input_files: list[str] | None = None) -> list[Any]:
        """This input as `/object_info` shows it."""
        if self.type != "COMBO":
            return [self.type, dict(self.options)] if self.options or self.v3 else [self.type]
        values = list(input_files or []) if self.choices_from_inputs else list(self.choices)
        if self.v3:
            return ["COMBO", {"multiselect": False, "options": values, **self.options}]
        return [values, dict(self.options)] if self.options else [values]


NodeRun = Callable[[Mapping[str, Any], NodeContext], NodeOutput]
InputLookup = Callable[[str], Path | None]
CustomValidator = Callable[[Mapping[str, Any], InputLookup], list[dict[str, Any]]]


@dataclass(frozen=True)
class NodeSpec:
    name: str
    display_name: str
    category: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    run: NodeRun
    output_node: bool = False
    python_module: str = "nodes"
    hidden: Mapping[str, str] = field(default_factory=dict)
    v3: bool = False
    custom_validate: CustomValidator | None = None
    reports_progress: bool = False
    model_input: str | None = None  # the input naming the model file this node loads
    loads_own_model: bool = False  # loads weights of its own (no file input), e.g. InspyrenetRembg

    @property
    def is_loader(self) -> bool:
        """A node without linked inputs (loads something); injected faults skip these."""
        return not any(spec.is_link for spec in self.inputs)

    def input(self, name: str) -> InputSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)

    def models_used(self, inputs: Mapping[str, Any]) -> set[str]:
        """The models a node of this class loads with these inputs."""
        used = {self.name} if self.loads_own_model else set()
        if self.model_input is not None and isinstance(inputs.get(self.model_input), str):
            used.add(inputs[self.model_input])
        return used

    def object_info(self, input_files: list[str]) -> dict[str, Any]:
        required = {spec.name: spec.wire_config(input_files) for spec in self.inputs}
        entry: dict[str, Any] = {
            "input": {"required": required},
            "input_order": {"required": list(required)},
            "output": list(self.outputs),
            "output_is_list": [False] * len(self.outputs),
            "output_name": list(self.outputs),
            "name": self.name,
            "display_name": self.display_name,
            "description": "",
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
        }
        if self.hidden:
            entry["input"]["hidden"] = dict(self.hidden)
            entry["input_order"]["hidden"] = list(self.hidden)
        if self.v3:
            entry.update(
                output_tooltips=[None] * len(self.outputs), deprecated=False, experimental=False,
                api_node=False,
            )
        return entry


class NodeCatalog:
    """The node classes one server knows, by class name."""

    def __init__(self, specs: Iterable[NodeSpec]) -> None:
        self._specs = {spec.name: spec for spec in specs}

    def get(self, class_type: str) -> NodeSpec | None:
        return self._specs.get(class_type)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._specs

    def names(self) -> list[str]:
        return list(self._specs)

    def models_of(self, prompt: Mapping[str, Any]) -> frozenset[str]:
        """Every model a prompt's nodes load (the model-load time is paid when this set changes)."""
        used: set[str] = set()
        for node in prompt.values():
            spec = self.get(node.get("class_type", "")) if isinstance(node, Mapping) else None
            if spec is not None:
                used |= spec.models_used(node.get("inputs") or {})
        return frozenset(used)

    def object_info(self, input_files: list[str]) -> dict[str, Any]:
        return {name: spec.object_info(input_files) for name, spec in self._specs.items()}
