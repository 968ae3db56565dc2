"""What a gateway's blob directory holds, by key: its files and the rows of its small-blob database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SMALL_DB = "small.db"


def stored_blobs(root: Path) -> dict[str, bytes]:
    """Every blob under `root` (a DirectoryBlobStore's root: `xx/yy/<key>`), files and rows alike."""
    blobs = {"/".join(p.relative_to(root).parts[2:]): p.read_bytes()
             for p in root.rglob("*") if p.is_file() and not p.name.startswith(SMALL_DB)}
    if (root / SMALL_DB).exists():
        with sqlite3.connect(root / SMALL_DB) as conn:
            blobs.update({key: bytes(data) for key, data in conn.execute("SELECT key, data FROM blobs")})
    return blobs
