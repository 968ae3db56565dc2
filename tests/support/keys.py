"""API keys for tests: a keys file (TOML, as API_KEYS_FILE reads it) and the headers that present them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-0123456789", "admin": "admin-key-0123456789"}


def write_keys(path: Path, **limits: dict[str, Any]) -> Path:
    """alice and bob (users) and admin; alice's key stored as its SHA-256, the others in plain text.
    `limits` adds settings per key name, e.g. `bob={"requests_per_minute": 3}`."""
    tables = []
    for name, key in KEYS.items():
        secret = f'key_sha256 = "{hashlib.sha256(key.encode()).hexdigest()}"' if name == "alice" else f'key = "{key}"'
        role = "admin" if name == "admin" else "user"
        extra = "".join(f"\n{k} = {v!r}" for k, v in limits.get(name, {}).items())
        tables.append(f'[[keys]]\nname = "{name}"\n{secret}\nrole = "{role}"{extra}\n')
    path.write_text("\n".join(tables))
    return path


def auth(name: str | None) -> dict[str, str]:
    """Headers presenting `name`'s key (Bearer for most, X-API-Key for bob); none for None."""
    if name is None:
        return {}
    if name == "bob":
        return {"X-API-Key": KEYS[name]}
    return {"Authorization": f"Bearer {KEYS[name]}"}
