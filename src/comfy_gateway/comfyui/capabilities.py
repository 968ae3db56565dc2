"""What one server can run, from its GET /object_info, and its memory, from GET /system_stats.

`/object_info` names every node class the server has and, for each combo input, its options: the
model files a loader offers (`UpscaleModelLoader.model_name`, `CheckpointLoaderSimple.ckpt_name`)
are among them. Two combo encodings exist (protocol §2): classic `[[options], {...}]` and V3
`["COMBO", {"options": [...]}]`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# (node class, input name) -> the options of that combo input
ComboOptions = Mapping[tuple[str, str], frozenset[str]]


@dataclass(frozen=True, eq=False)  # one reading of one server: compared (and hashed) by identity
class Capabilities:
    node_classes: frozenset[str]
    combos: ComboOptions = field(default_factory=dict)
    fetched_at: float = field(default_factory=time.time)

    def missing(self, node_classes: Iterable[str], models: Iterable[tuple[str, str, str]]) -> list[str]:
        """What of these needs the server lacks, in words: `node X`, `model F (Class.input)`.

        A model is only missing when its loader's input lists options and the file is not one of them."""
        lacking = [f"node {name}" for name in sorted(set(node_classes) - self.node_classes)]
        for node_class, input_name, file in sorted(set(models)):
            options = self.combos.get((node_class, input_name))
            if node_class in self.node_classes and options is not None and file not in options:
                lacking.append(f"model {file} ({node_class}.{input_name})")
        return lacking

    def options(self, node_class: str, input_name: str) -> list[str] | None:
        found = self.combos.get((node_class, input_name))
        return None if found is None else sorted(found)


def _combo_options(config: Any) -> list[str] | None:
    if not isinstance(config, list) or not config:
        return None
    if isinstance(config[0], list):  # classic: [["a", "b"], {...}]
        return [str(v) for v in config[0]]
    if config[0] == "COMBO" and len(config) > 1 and isinstance(config[1], Mapping):  # V3
        options = config[1].get("options")
        return [str(v) for v in options] if isinstance(options, list) else None
    return None


def parse_object_info(body: Mapping[str, Any]) -> Capabilities:
    combos: dict[tuple[str, str], frozenset[str]] = {}
    for name, entry in body.items():
        inputs = entry.get("input") if isinstance(entry, Mapping) else None
        for section in ("required", "optional"):
            group = inputs.get(section) if isinstance(inputs, Mapping) else None
            for input_name, config in (group or {}).items():
                options = _combo_options(config)
                if options is not None:
                    combos[(str(name), str(input_name))] = frozenset(options)
    return Capabilities(frozenset(str(n) for n in body), combos)


@dataclass(frozen=True)
class Vram:
    total: int
    free: int

    def as_dict(self) -> dict[str, int]:
        return {"total_bytes": self.total, "free_bytes": self.free}


def parse_vram(system_stats: Mapping[str, Any]) -> Vram | None:
    """Free and total memory over the server's devices (a CPU-only server reports its RAM)."""
    devices = [d for d in system_stats.get("devices") or () if isinstance(d, Mapping)]
    try:
        total = sum(int(d["vram_total"]) for d in devices)
        free = sum(int(d["vram_free"]) for d in devices)
    except (KeyError, TypeError, ValueError):
        return None
    return Vram(total, free) if devices else None
