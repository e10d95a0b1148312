"""File helpers every stage uses: whole-or-nothing writes and output-folder checks."""

from __future__ import annotations

import errno
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
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None:  # a failed write() or flush() names no file: name the one being written
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


WRITE_ANYWHERE = "run from a folder you can write to, or point snakemake at one with -d/--directory"


def unwritable(folders: list[str]) -> str | None:
    """The first of `folders` (relative to the working directory) this process cannot create files in,
    as "<problem>; <fix>"; None when all are writable. Checks every level of each path (a dangling
    symlink, a file where a folder must be) and probes the deepest existing folder with a real file:
    permissions alone do not tell (root, read-only mounts)."""
    for folder in map(Path, folders):
        for level in [*reversed(folder.parents), folder][1:]:  # results, then results/runs, ...
            if level.is_symlink() and not level.exists():
                return (f"{level.absolute()} is a symlink to {os.readlink(level)}, which does not exist; create "
                        f"its target or remove the link")
        existing = next(p for p in [folder, *folder.parents] if p.exists())
        if not existing.is_dir():
            return f"{existing.resolve()} is a file, not a folder; {WRITE_ANYWHERE}"
        try:
            tempfile.TemporaryFile(dir=existing).close()
        except OSError as err:
            return f"{existing.resolve()} is not writable ({err.strerror}); {WRITE_ANYWHERE}"
    return None


def disk_full(err: OSError) -> str | None:
    """One line for a full disk or quota (the writes are atomic: nothing half-written is left)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {err.filename}" if err.filename else ""
        return (f"no space left on the device{where} ({err.strerror}); free some space (or point snakemake at "
                f"another folder with -d) and rerun: finished outputs are kept")
    return None
