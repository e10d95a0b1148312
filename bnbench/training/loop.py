"""Running one run, the same way for both frameworks: set up the process, prepare the data, build the
trainer, then the epoch loop (same batch order, same per-epoch records, same stop rule). The CLI, the
tests and the speed harness all run runs through `start` / `train`.

A backend (bnbench.training.backends) supplies only what differs per framework:
  NAME, select_device(setting), configure(threads, seed), versions(), build_model, export_weights
  Trainer(run, data, shape, outputs, device, weights=None), built on the run's data, with:
  start_run(run, weights=None)  back to the start of another run on the same data and architecture
                      (its initial weights, fresh BN statistics and optimizer state), reusing what the
                      framework allows (Keras: the model and its traced epoch graph)
  dropouts            (rate, units) of each Dropout layer (spec.dropouts), [] without dropout
  train_epoch(order, masks)  one SGD step per mini-batch of x_train[order] (the last batch may be
                      smaller), in training mode (BN uses batch statistics and updates its moving ones;
                      each Dropout layer keeps the units its mask (spec.dropout_masks, rows indexed by
                      sample) keeps); returns the mean of the steps' training-mode losses
  evaluate(split)     (mean loss, accuracy) on "train_eval", "val" or "test" in inference mode
                      (BN uses its moving statistics)
  state()             everything training changes (weights, BN moving statistics, optimizer
                      buffers, the framework's RNG state) as named NumPy arrays, for checkpoints
  load_state(arrays)  put such a state back, bit for bit
  moving_statistics(), set_moving_statistics(stats), norm_inputs(rows, layer)
                      BN's statistics and the inputs of its layers, for bnbench.training.diagnostics
"""

from __future__ import annotations

import math
import time
from typing import Callable, Protocol

import numpy as np

from bnbench import BnbenchError
from bnbench.training.checkpoint import Checkpoints
from bnbench.training.diagnostics import NOT_MEASURED, bn_diagnostics
from bnbench.training.spec import INPUT_SHAPES, batch_order, dropout_masks

# Train metrics are measured on the first TRAIN_EVAL_SIZE training samples (all of them for circles):
# a fixed sample, the same in both frameworks, that costs a fraction of a pass over 55 000 images.
TRAIN_EVAL_SIZE = 10_000
SPLITS = ("train", "train_eval", "val", "test")
EVAL_BATCH = 1024  # samples per forward pass when evaluating (inference mode: no effect on results)


class Trainer(Protocol):
    dropouts: list[tuple[float, int]]

    def train_epoch(self, order: np.ndarray, masks: list[np.ndarray]) -> float: ...
    def evaluate(self, split: str) -> tuple[float, float]: ...
    def state(self) -> dict[str, np.ndarray]: ...
    def load_state(self, arrays: dict[str, np.ndarray]) -> None: ...


def prepare(run: dict, data: dict) -> tuple[tuple, int]:
    """Reshape the samples in `data` (in place, as views) for the architecture; return
    (sample shape, number of output logits). Float labels are binary (one logit, as for circles);
    integer labels are classes (one logit each).
    """
    shape = tuple(INPUT_SHAPES[run["arch"]] or data["x_train"].shape[1:])
    if int(np.prod(shape)) != int(np.prod(data["x_train"].shape[1:])):
        raise BnbenchError(f"arch {run['arch']} takes samples of shape {shape}, the data holds "
                           f"{data['x_train'].shape[1:]}; train it on its own dataset")
    for key in [k for k in data if k.startswith("x_")]:
        data[key] = data[key].reshape(len(data[key]), *shape)
    for kind in ("x", "y"):  # views, not copies
        data[f"{kind}_train_eval"] = data[f"{kind}_train"][:TRAIN_EVAL_SIZE]
    y = data["y_train"]
    outputs = 1 if y.dtype.kind == "f" else int(max(y.max(), data["y_test"].max())) + 1
    return shape, outputs


def batches(n: int, batch_size: int) -> list[slice]:
    """Consecutive mini-batches over n samples; the last one keeps the remainder, as Keras' fit does."""
    return [slice(first, min(first + batch_size, n)) for first in range(0, n, batch_size)]


def start(backend, run: dict, data: dict, threads: int = 1, log: Callable[[str], None] = print,
          weights: list | None = None) -> tuple[Trainer, int, str]:
    """Set up this process for the run (device, threads, seeds, determinism) and build its trainer from
    `weights` (Keras layout; default: the run seed's spec.initial_weights). Takes ownership of `data`:
    its arrays move into the trainer. Returns (trainer, training-set size, device)."""
    device = backend.select_device(run.get("device", "auto"))  # Keras: before TF sets up its devices
    backend.configure(threads, run["seed"])
    log(f"{backend.NAME} trains on {device}")
    shape, outputs = prepare(run, data)
    n_train = len(data["x_train"])
    return backend.Trainer(run, data, shape, outputs, device, weights), n_train, str(device)


class Session:
    """Runs trained one after another in one process on one dataset: the first run builds the trainer
    (which takes `data`); each further run resets it to its own start (`Trainer.start_run`) and seeds
    the framework again, so that it trains exactly as it would alone."""

    def __init__(self, backend, data: dict, threads: int = 1):
        self.backend, self.data, self.threads, self.trainer = backend, data, threads, None

    def train(self, run: dict, log: Callable[[str], None] = print, checkpoints: Checkpoints | None = None) -> dict:
        """Run `run` from start to end (see `start` and `fit`); the outcome with the device it ran on."""
        if self.trainer is None:
            self.trainer, self.n_train, self.device = start(self.backend, run, self.data, self.threads, log)
        else:
            self.backend.configure(self.threads, run["seed"])
            self.trainer.start_run(run)
        # Chance: one class in `outputs` (two for a single binary logit); a collapsed run ends near it.
        chance = 1.0 / max(2, self.trainer.outputs)
        return {**fit(self.trainer, run, self.n_train, log, checkpoints), "device": self.device,
                "chance_accuracy": chance}


def train(backend, run: dict, data: dict, threads: int = 1, log: Callable[[str], None] = print,
          checkpoints: Checkpoints | None = None) -> dict:
    """Run one run from start to end in a fresh session; the outcome with the device it ran on."""
    return Session(backend, data, threads).train(run, log, checkpoints)


def fit(trainer: Trainer, run: dict, n_train: int, log: Callable[[str], None] = print,
        checkpoints: Checkpoints | None = None) -> dict:
    """Train for run['epochs'] epochs; stop early if the loss diverges (NaN/inf). With `checkpoints`,
    resume from the run's checkpoint if there is one, and write one every `checkpoints.every` epochs.

    Train loss/accuracy are evaluated in inference mode at epoch end on the first TRAIN_EVAL_SIZE
    training samples (not Keras' running average over the epoch's batches), so both frameworks
    report the same thing.
    """
    done, records = checkpoints.restore(trainer) if checkpoints else (0, [])
    order_seed = run.get("order_seed", run["seed"])  # the data-order seed: batch order and dropout masks
    diverged_epoch = None
    for epoch in range(done + 1, run["epochs"] + 1):
        start = time.perf_counter()
        masks = dropout_masks(order_seed, epoch, n_train, trainer.dropouts)  # [] without dropout
        step_loss = trainer.train_epoch(batch_order(order_seed, epoch, n_train), masks)
        seconds = time.perf_counter() - start
        train_loss, train_acc = trainer.evaluate("train_eval")
        val_loss, val_acc = trainer.evaluate("val")
        records.append({"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
                        "val_loss": val_loss, "val_accuracy": val_acc, "epoch_seconds": seconds})
        log(f"epoch {epoch}/{run['epochs']}: loss {train_loss:.4f} acc {train_acc:.4f} "
            f"val_loss {val_loss:.4f} val_acc {val_acc:.4f} ({seconds:.2f}s)")
        if not (math.isfinite(step_loss) and math.isfinite(train_loss)):
            diverged_epoch = epoch
            log(f"training diverged (mean step loss {step_loss}, train loss {train_loss}) at epoch {epoch}; "
                f"stopping this run")
            break
        if checkpoints and checkpoints.due(epoch, run["epochs"]):
            checkpoints.save(trainer, epoch, records)
    test_loss, test_acc = trainer.evaluate("test")
    # BN's train/inference gap on the trained weights (not on a diverged network's non-finite statistics)
    gap = bn_diagnostics(trainer, run, n_train, records[-1]["epoch"]) if diverged_epoch is None else NOT_MEASURED
    return {"history": records, "test_loss": test_loss, "test_accuracy": test_acc, **gap,
            "diverged": diverged_epoch is not None, "diverged_epoch": diverged_epoch}
