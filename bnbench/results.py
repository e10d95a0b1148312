"""The run output contract (history.csv, summary.json) and combining runs into tidy tables."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

HISTORY_COLUMNS = ["dataset", "arch", "variant", "framework", "seed", "epoch", "train_loss",
                   "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds"]
RUN_COLUMNS = HISTORY_COLUMNS[:5]


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


def write_history(path: str | Path, run: dict, records: list[dict]) -> None:
    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow({**{k: run[k] for k in RUN_COLUMNS}, **record})

    atomic_write(Path(path), write)


def write_summary(path: str | Path, summary: dict) -> None:
    atomic_write(Path(path), lambda handle: json.dump(summary, handle, indent=2, sort_keys=True))


def combine(run_dirs: list[str | Path]):
    """(history, summary) DataFrames: one row per epoch, one row per run (nested keys flattened)."""
    import pandas as pd

    history = pd.concat([pd.read_csv(Path(d) / "history.csv") for d in run_dirs], ignore_index=True)
    summaries = [json.loads((Path(d) / "summary.json").read_text()) for d in run_dirs]
    summary = pd.json_normalize(summaries, sep=".")
    first = RUN_COLUMNS + [c for c in summary.columns if c not in RUN_COLUMNS and not c.startswith("run.")]
    summary = summary[first + [c for c in summary.columns if c not in first]]
    return history, summary
