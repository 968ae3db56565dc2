"""The server's folders: input (uploads), output (SaveImage) and temp (PreviewImage).

All three live under one private temporary directory per server instance. The rules for
upload names (§4 of the protocol notes) and for `/view` paths (§8) are implemented here.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import NodeExecutionError, RequestRejected

FOLDER_TYPES = ("input", "output", "temp")


@dataclass(frozen=True)
class StoredFile:
    """Where a file was put, as ComfyUI reports it (`name`/`filename`, `subfolder`, `type`)."""

    name: str
    subfolder: str
    type: str

    def as_upload_reply(self) -> dict[str, str]:
        return {"name": self.name, "subfolder": self.subfolder, "type": self.type}

    def as_image_ref(self) -> dict[str, str]:
        return {"filename": self.name, "subfolder": self.subfolder, "type": self.type}


def _inside(base: Path, candidate: Path) -> bool:
    base_s = os.path.abspath(base)
    return os.path.commonpath([base_s, os.path.abspath(candidate)]) == base_s


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Storage:
    """Owns the temporary directory tree; `close()` removes it (calling it twice is harmless)."""

    def __init__(self, prefix: str = "fake_comfyui_") -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(prefix=prefix)
        self.root = Path(self._tmp.name)
        for folder in FOLDER_TYPES:
            (self.root / folder).mkdir()

    def dir_for(self, folder_type: str) -> Path:
        if folder_type not in FOLDER_TYPES:
            raise ValueError(f"unknown folder type {folder_type!r}")
        return self.root / folder_type

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def temp_dir(self) -> Path:
        return self.root / "temp"

    def input_files(self) -> list[str]:
        """Top-level files of the input folder, sorted (what `/object_info` lists for LoadImage)."""
        return sorted(p.name for p in self.input_dir.iterdir() if p.is_file())

    def input_path(self, name: str) -> Path | None:
        """The input file a LoadImage value names (`"sub/x.png"` allowed), or None if absent/outside."""
        path = self.input_dir / name
        if not _inside(self.input_dir, path) or not path.is_file():
            return None
        return path

    # -- uploads ---------------------------------------------------------------------------------

    def store_upload(
        self, data: bytes, filename: str, *, subfolder: str = "", folder_type: str = "input",
        overwrite: bool = False,
    ) -> StoredFile:
        """Save an upload using ComfyUI's naming: identical bytes reuse a name, others get ` (i)`."""
        if not filename:
            raise RequestRejected(400, "no filename")
        base = self.dir_for(folder_type)
        folder = base / subfolder
        target = folder / filename
        if not _inside(base, folder) or not _inside(folder, target) or target.parent != folder:
            raise RequestRejected(400, "path escapes the upload folder")
        folder.mkdir(parents=True, exist_ok=True)
        if not overwrite:
            stem, ext = os.path.splitext(filename)
            counter = 1
            incoming = _digest(data)
            while target.exists():
                if target.is_file() and _digest(target.read_bytes()) == incoming:
                    return StoredFile(target.name, subfolder, folder_type)
                target = folder / f"{stem} ({counter}){ext}"
                counter += 1
        target.write_bytes(data)
        return StoredFile(target.name, subfolder, folder_type)

    # -- /view -----------------------------------------------------------------------------------

    def resolve_view(self, filename: str, subfolder: str, folder_type: str) -> Path:
        """Path of a file to serve, or RequestRejected with ComfyUI's status (400/403/404)."""
        if folder_type not in FOLDER_TYPES:
            raise RequestRejected(400, "unknown type")
        if filename.startswith("/") or ".." in filename:
            raise RequestRejected(400, "bad filename")
        base = self.dir_for(folder_type)
        folder = base / subfolder
        if not _inside(base, folder):
            raise RequestRejected(403, "subfolder escapes")
        path = folder / filename
        if not _inside(base, path) or not path.is_file():
            raise RequestRejected(404, "no such file")
        return path

    # -- node outputs ----------------------------------------------------------------------------

    def next_output_path(self, folder_type: str, filename_prefix: str, ext: str = "png") -> tuple[Path, StoredFile]:
        """Next free `<prefix>_NNNNN_.<ext>` for a prefix that may contain a subfolder path."""
        base = self.dir_for(folder_type)
        sub, _, prefix = filename_prefix.replace("\\", "/").rpartition("/")
        folder = base / sub
        if not _inside(base, folder / prefix):
            raise NodeExecutionError(
                "**** ERROR: Saving image outside the output folder is not allowed."
                f"\n full_output_folder: {os.path.abspath(folder)}\n         output_dir: {base}",
                "Exception",
            )
        folder.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(re.escape(prefix) + r"_(\d{5,})_\." + re.escape(ext) + "$")
        used = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
        counter = max(used, default=0) + 1
        name = f"{prefix}_{counter:05}_.{ext}"
        return folder / name, StoredFile(name, sub, folder_type)

    def wipe_temp(self) -> None:
        """Empty the temp folder, as ComfyUI does at start and exit."""
        if self._tmp is None:
            return
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.temp_dir.mkdir(exist_ok=True)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
