"""File helpers every stage uses: whole-or-nothing writes and output-folder checks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temporary_path(path: Path) -> Path:
    """Where atomic_write writes `path` before renaming it (a kill can leave it behind)."""
    return path.with_name(f".{path.name}.tmp")


def atomic_write(path: Path, write, mode: str = "w") -> None:
    """Call write(handle) on a temporary file, put it on disk, then rename it to `path`: no reader ever
    sees a half-written file, and a failed write leaves neither the file nor the temporary behind.
    `mode` "wb" for binary writers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"newline": "", "encoding": "utf-8"})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def unwritable(folders: list[str]) -> str | None:
    """The first of `folders` (relative to the working directory) this process cannot create files in,
    with the reason; None when all are writable. Probes with a real file: permissions alone do not tell
    (root, read-only mounts)."""
    for folder in map(Path, folders):
        existing = next(p for p in [folder, *folder.parents] if p.exists())
        if not existing.is_dir():
            return f"{existing.resolve()} is a file, not a folder"
        try:
            tempfile.TemporaryFile(dir=existing).close()
        except OSError as err:
            return f"{existing.resolve()} is not writable ({err.strerror})"
    return None
