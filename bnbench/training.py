"""The epoch loop both backends share: same batch order, same per-epoch records, same stop rule.

A backend supplies a trainer with two methods:
  train_batch(x, y)  one SGD step in training mode (BN uses batch statistics, updates moving ones)
  evaluate(x, y)     (mean loss, accuracy) in inference mode (BN uses moving statistics)
"""

from __future__ import annotations

import math
import time
from typing import Callable, Protocol

import numpy as np

from bnbench.spec import INPUT_SHAPES, batch_order


class Trainer(Protocol):
    def train_batch(self, x: np.ndarray, y: np.ndarray) -> None: ...
    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]: ...


def prepare(run: dict, data: dict) -> tuple[dict, tuple, int]:
    """(data with samples shaped for the architecture, sample shape, number of output logits).

    Float labels are binary (one logit, as for circles); integer labels are classes (one logit each).
    """
    shape = INPUT_SHAPES[run["arch"]] or data["x_train"].shape[1:]
    shaped = {k: (v.reshape(len(v), *shape) if k.startswith("x_") else v) for k, v in data.items()}
    y = data["y_train"]
    outputs = 1 if y.dtype.kind == "f" else int(max(y.max(), data["y_test"].max())) + 1
    return shaped, tuple(shape), outputs


def fit(trainer: Trainer, run: dict, data: dict, log: Callable[[str], None] = print) -> dict:
    """Train for run['epochs'] epochs; stop early if the loss diverges (NaN/inf).

    Train loss/accuracy are evaluated on the whole training set in inference mode at epoch end
    (not Keras' running average over the epoch's batches), so both frameworks report the same thing.
    """
    x, y = data["x_train"], data["y_train"]
    batch_size, records, diverged_epoch = run["batch_size"], [], None
    for epoch in range(1, run["epochs"] + 1):
        order = batch_order(run["seed"], epoch, len(x))
        start = time.perf_counter()
        for first in range(0, len(x), batch_size):
            index = order[first:first + batch_size]
            trainer.train_batch(x[index], y[index])
        seconds = time.perf_counter() - start
        train_loss, train_acc = trainer.evaluate(x, y)
        val_loss, val_acc = trainer.evaluate(data["x_val"], data["y_val"])
        records.append({"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
                        "val_loss": val_loss, "val_accuracy": val_acc, "epoch_seconds": seconds})
        log(f"epoch {epoch}/{run['epochs']}: loss {train_loss:.4f} acc {train_acc:.4f} "
            f"val_loss {val_loss:.4f} val_acc {val_acc:.4f} ({seconds:.2f}s)")
        if not math.isfinite(train_loss):
            diverged_epoch = epoch
            log(f"training diverged (loss {train_loss}) at epoch {epoch}; stopping this run")
            break
    test_loss, test_acc = trainer.evaluate(data["x_test"], data["y_test"])
    return {"history": records, "test_loss": test_loss, "test_accuracy": test_acc,
            "diverged": diverged_epoch is not None, "diverged_epoch": diverged_epoch}
