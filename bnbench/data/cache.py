"""The npz cache of a dataset: written atomically, read with a clear error."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from bnbench import BnbenchError
from bnbench.files import atomic_write

SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def save(path: str | Path, arrays: dict) -> None:
    atomic_write(Path(path), lambda handle: np.savez(handle, **{k: arrays[k] for k in SPLITS}), mode="wb")


def load(path: str | Path) -> dict:
    if not Path(path).is_file():
        raise BnbenchError(f"{path}: dataset cache not found; let the workflow make it (snakemake {path})")
    try:
        with np.load(path) as npz:
            return {k: npz[k] for k in SPLITS}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:  # missing, torn, not an npz
        raise BnbenchError(f"{path}: unreadable dataset cache ({err}); delete it and rerun to regenerate") from None
