"""POST /prompt validation with ComfyUI's error shapes (§5.1, §5.2 of the protocol notes).

`validate_prompt` returns `Accepted` (possibly with node_errors for dropped branches) or
`Rejected` (HTTP 400 body). Bodies of the wrong shape raise MalformedRequest (HTTP 500).
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .catalog import InputLookup, InputSpec, NodeCatalog, NodeSpec
from .errors import MalformedRequest

Error = dict[str, Any]


@dataclass(frozen=True)
class Accepted:
    outputs: list[str]
    node_errors: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    error: Error
    node_errors: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "node_errors": self.node_errors}


def top_error(kind: str, message: str, details: str = "") -> Error:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def _error(kind: str, message: str, details: str, extra: dict[str, Any]) -> Error:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


class _GraphValidator:
    """Validates nodes reachable from the outputs, once each (memoised)."""

    def __init__(self, prompt: Mapping[str, Any], catalog: NodeCatalog, lookup: InputLookup) -> None:
        self._prompt = prompt
        self._catalog = catalog
        self._lookup = lookup
        self._result: dict[str, bool] = {}
        self.errors: dict[str, list[Error]] = {}

    def spec_of(self, node_id: str) -> NodeSpec:
        spec = self._catalog.get(self._prompt[node_id]["class_type"])
        assert spec is not None  # class names were checked before
        return spec

    def validate(self, node_id: str) -> bool:
        if node_id in self._result:
            return self._result[node_id]
        self._result[node_id] = True  # a cycle is reported at run time, not here
        node = self._prompt[node_id]
        inputs = node.get("inputs") or {}
        if not isinstance(inputs, Mapping):
            raise MalformedRequest(f"inputs of node {node_id} is not an object")
        errors: list[Error] = []
        upstream_ok = True
        spec = self.spec_of(node_id)
        for input_spec in spec.inputs:
            if input_spec.name not in inputs:
                errors.append(_error("required_input_missing", "Required input is missing", input_spec.name,
                                     {"input_name": input_spec.name}))
                continue
            value = inputs[input_spec.name]
            if isinstance(value, list):
                found = self._check_link(input_spec, value)
                if isinstance(found, dict):
                    errors.append(found)
                elif not found:
                    upstream_ok = False
            elif input_spec.is_link:
                errors.append(_error("bad_linked_input", "Bad linked input, must be a length-2 list of "
                                     "[node_id, slot_index]", f"{input_spec.name}, {value!r}",
                                     {"input_name": input_spec.name, "input_config": input_spec.wire_config(),
                                      "received_value": value}))
            else:
                errors.extend(_check_widget(input_spec, value))
        if spec.custom_validate is not None and not errors:
            errors.extend(spec.custom_validate(inputs, self._lookup))
        if errors:
            self.errors[node_id] = errors
        self._result[node_id] = upstream_ok and not errors
        return self._result[node_id]

    def _check_link(self, input_spec: InputSpec, link: list[Any]) -> Error | bool:
        """An error for this input, or whether the linked node validated."""
        name = input_spec.name
        extra: dict[str, Any] = {"input_name": name, "input_config": input_spec.wire_config()}
        if len(link) != 2:
            return _error("bad_linked_input", "Bad linked input, must be a length-2 list of "
                          "[node_id, slot_index]", f"{name}, {link!r}", {**extra, "received_value": link})
        source_id, slot = str(link[0]), link[1]
        if source_id not in self._prompt:
            trace = traceback.format_stack(limit=3)
            return _error("exception_during_inner_validation", "Exception when validating inner node",
                          repr(source_id), {**extra, "exception_message": repr(source_id),
                                            "exception_type": "KeyError", "traceback": trace,
                                            "linked_node": link})
        outputs = self.spec_of(source_id).outputs
        received = outputs[slot] if isinstance(slot, int) and 0 <= slot < len(outputs) else None
        if received != input_spec.type:
            return _error("return_type_mismatch", "Return type mismatch between linked nodes",
                          f"{name}, received_type({received}) mismatch input_type({input_spec.type})",
                          {**extra, "received_type": received, "linked_node": link})
        return self.validate(source_id)

    def upstream(self, node_id: str) -> set[str]:
        """The node and every node it links to, transitively (links to missing nodes ignored)."""
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            current = stack.pop()
            if current in seen or current not in self._prompt:
                continue
            seen.add(current)
            inputs = self._prompt[current].get("inputs") or {}
            stack.extend(str(v[0]) for v in inputs.values() if isinstance(v, list) and len(v) == 2)
        return seen


def _check_widget(spec: InputSpec, value: Any) -> list[Error]:
    extra: dict[str, Any] = {"input_name": spec.name, "input_config": spec.wire_config(),
                             "received_value": value}
    if spec.type == "COMBO":
        if spec.choices_from_inputs or value in spec.choices:
            return []
        return [_error("value_not_in_list", "Value not in list",
                       f"{spec.name}: '{value}' not in {list(spec.choices)}", extra)]
    try:
        converted = spec.coerce(value)
    except (TypeError, ValueError) as exc:
        return [_error("invalid_input_type", f"Failed to convert an input value to a {spec.type} value",
                       f"{spec.name}, {value}, {exc}", {**extra, "exception_message": str(exc)})]
    low, high = spec.options.get("min"), spec.options.get("max")
    if low is not None and converted < low:
        return [_error("value_smaller_than_min", f"Value {converted} smaller than min of {low}", spec.name,
                       {**extra, "received_value": converted})]
    if high is not None and converted > high:
        return [_error("value_bigger_than_max", f"Value {converted} bigger than max of {high}", spec.name,
                       {**extra, "received_value": converted})]
    return []


def _check_classes(prompt: Mapping[str, Any], catalog: NodeCatalog) -> Rejected | None:
    for node_id, node in prompt.items():
        if not isinstance(node, Mapping) or "class_type" not in node:
            return Rejected(top_error("invalid_prompt",
                                      "Cannot execute because a node is missing the class_type property.",
                                      f"Node ID '#{node_id}'"))
        class_type = node["class_type"]
        if not isinstance(class_type, str) or class_type not in catalog:
            return Rejected(top_error("invalid_prompt",
                                      f"Cannot execute because node {class_type} does not exist.",
                                      f"Node ID '#{node_id}'"))
    return None


def validate_prompt(
    prompt: Any, catalog: NodeCatalog, lookup: InputLookup, targets: list[str] | None = None,
) -> Accepted | Rejected:
    """Check a graph the way ComfyUI does before queueing it."""
    if not isinstance(prompt, Mapping):
        raise MalformedRequest("prompt is not an object")
    rejected = _check_classes(prompt, catalog)
    if rejected is not None:
        return rejected
    validator = _GraphValidator(prompt, catalog, lookup)
    outputs = [node_id for node_id in prompt if validator.spec_of(node_id).output_node]
    if targets is not None:
        outputs = [node_id for node_id in outputs if node_id in set(map(str, targets))]
    if not outputs:
        return Rejected(top_error("prompt_no_outputs", "Prompt has no outputs"))
    good: list[str] = []
    own_errors: list[str] = []
    node_errors: dict[str, Any] = {}
    for output_id in outputs:
        if validator.validate(output_id):
            good.append(output_id)
            continue
        own_errors += [f"{e['message']}: {e['details']}" for e in validator.errors.get(output_id, [])]
        for node_id in sorted(validator.upstream(output_id) & validator.errors.keys()):
            entry = node_errors.setdefault(node_id, {
                "errors": validator.errors[node_id], "dependent_outputs": [],
                "class_type": prompt[node_id]["class_type"]})
            entry["dependent_outputs"].append(output_id)
    if not good:
        return Rejected(top_error("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                                  "\n".join(own_errors)), node_errors)
    return Accepted(good, node_errors)
