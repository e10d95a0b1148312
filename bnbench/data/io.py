"""The npz cache of a dataset: written atomically, read with a clear error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bnbench import BnbenchError

SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def save(path: str | Path, arrays: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")  # np.savez appends .npz to other names
    np.savez(tmp, **{k: arrays[k] for k in SPLITS})
    os.replace(tmp, path)


def load(path: str | Path) -> dict:
    try:
        with np.load(path) as npz:
            return {k: npz[k] for k in SPLITS}
    except (OSError, KeyError, ValueError) as err:
        raise BnbenchError(f"{path}: unreadable dataset cache ({err}); delete it and rerun to regenerate") from None
