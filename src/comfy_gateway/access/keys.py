"""API keys: the TOML file of API_KEYS_FILE, who each key is, and looking a presented key up.

    [[keys]]
    name = "alice"                 # the tenant: fair share, limits, whose jobs these are; logged
    key_sha256 = "9f86d0..."       # hex SHA-256 of the key (or `key = "..."` in plain text, for development)
    role = "user"                  # "user" or "admin"
    max_concurrent_jobs = 2        # optional limits; none means only the gateway's own
    max_queued_jobs = 100
    requests_per_minute = 600
    priority = 0                   # higher goes first

Only digests are kept in memory. A presented key is hashed and compared with every digest in
constant time, so neither the timing nor the log lines tell anything about a key.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .principal import Principal, Role


class KeyFileError(ValueError):
    """The keys file cannot be read or says something invalid."""


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    key_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    key: str | None = Field(None, min_length=8, max_length=512)
    role: Literal["user", "admin"] = "user"
    max_concurrent_jobs: int | None = Field(None, ge=1)
    max_queued_jobs: int | None = Field(None, ge=1)
    requests_per_minute: int | None = Field(None, ge=1)
    priority: int = Field(0, ge=-1000, le=1000)

    @model_validator(mode="after")
    def _one_key(self) -> _KeyEntry:
        if (self.key_sha256 is None) == (self.key is None):
            raise ValueError("give exactly one of key_sha256 and key")
        return self

    def digest(self) -> bytes:
        if self.key_sha256 is not None:
            return bytes.fromhex(self.key_sha256)
        assert self.key is not None
        return digest_of(self.key)

    def principal(self) -> Principal:
        return Principal(self.name, Role(self.role), max_concurrent_jobs=self.max_concurrent_jobs,
                         max_queued_jobs=self.max_queued_jobs, requests_per_minute=self.requests_per_minute,
                         priority=self.priority)


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[_KeyEntry] = Field(min_length=1)


@dataclass(frozen=True)
class _Known:
    digest: bytes
    principal: Principal


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def load_keys(path: Path) -> tuple[_Known, ...]:
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        parsed = _KeyFile.model_validate(raw)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeyFileError(f"API_KEYS_FILE {path}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise KeyFileError(f"API_KEYS_FILE {path}: {where}: {first['msg']}") from None
    known = tuple(_Known(entry.digest(), entry.principal()) for entry in parsed.keys)
    for what, values in (("name", [k.principal.name for k in known]), ("key", [k.digest for k in known])):
        if len(set(values)) != len(values):
            raise KeyFileError(f"API_KEYS_FILE {path}: two keys have the same {what}")
    return known


class KeyRing:
    """The keys in force. Without a file there are none, and every caller is the anonymous admin."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._known: tuple[_Known, ...] = load_keys(path) if path is not None else ()

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def reload(self) -> Sequence[str]:
        """Read the file again (on SIGHUP). A broken file raises KeyFileError and the old keys stay."""
        if self.path is not None:
            self._known = load_keys(self.path)
        return self.names()

    def names(self) -> list[str]:
        return [k.principal.name for k in self._known]

    def authenticate(self, presented: str) -> Principal | None:
        digest = digest_of(presented)
        found: Principal | None = None
        for known in self._known:  # every digest is compared, so the time does not depend on which one matched
            if hmac.compare_digest(known.digest, digest):
                found = known.principal
        return found

    def concurrency_caps(self) -> dict[str, int]:
        """Tenant -> max_concurrent_jobs, for the keys that set one."""
        return {k.principal.name: k.principal.max_concurrent_jobs
                for k in self._known if k.principal.max_concurrent_jobs is not None}
