"""Two concentric circles, exactly as in the Keras tutorial: make_circles, first n_train rows train."""

from __future__ import annotations

import numpy as np


def make(n_samples: int = 1000, noise: float = 0.1, random_state: int = 1, n_train: int = 500) -> dict:
    """Train on the first n_train points; the tutorial validates on the rest, so val == test here.

    No scaling: the tutorial feeds the raw coordinates (which is what input BN is tested against).
    """
    from sklearn.datasets import make_circles  # here: the registry is imported by every training job

    x, y = make_circles(n_samples=n_samples, noise=noise, random_state=random_state)
    x, y = x.astype(np.float32), y.astype(np.float32)
    train, test = slice(0, n_train), slice(n_train, None)
    return {"x_train": x[train], "y_train": y[train],
            "x_val": x[test], "y_val": y[test],
            "x_test": x[test], "y_test": y[test]}


def training_size(settings: dict) -> int:
    return settings["n_train"]


def problem(settings: dict) -> str | None:
    if settings["n_train"] >= settings["n_samples"]:
        return (f"n_train ({settings['n_train']}) must be below n_samples ({settings['n_samples']}) so that "
                f"a test half remains; lower n_train")
    return None
