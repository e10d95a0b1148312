"""BN's train/inference gap, measured at the end of a run on the trained weights (the same code for both
frameworks; the backends supply three small methods, see below).

BN normalises with the mini-batch's own statistics in training and with its moving averages at inference.
Three sets of per-channel statistics (mean, biased variance) of each BN layer's input are compared:
  moving       the moving averages training left (what inference uses: test_accuracy)
  population   recomputed over the whole training set in inference mode ("precise BN", Wu & Johnson 2021):
               layer by layer, each BN layer's input statistics computed with the BN layers before it
               already on their population statistics; test accuracy with them is population_test_accuracy
  last batch   the final epoch's last mini-batch through the final weights in BN's training mode (every BN
               layer normalising with that batch's own statistics), dropout off: the statistics the moving
               averages took in last (with momentum 0 they *are* the moving ones, up to the final step).
               Batch renorm layers normalise here as plain BN does (without renorm's r, d correction), so
               behind a renorm layer these are not quite what its training saw
Per layer, each of last batch and population is compared with moving:
  mean_gap       mean over channels of |mean - moving mean| / sqrt(moving variance + epsilon), the shift in
                 the units inference divides by
  log_std_ratio  mean over channels of |ln(sqrt((variance + epsilon) / (moving variance + epsilon)))|
Statistics are accumulated in float64 over chunks of samples (Chan et al.'s pairwise update): chunking adds
no round-off beyond the framework's float32 forward pass.

A backend's Trainer supplies:
  moving_statistics()           [(mean, variance)] of each layer with moving statistics (BN, renorm), in order
  set_moving_statistics(stats)  put such a list in place (inference then uses it)
  norm_inputs(rows, layer)      the inputs of that layer (index into moving_statistics) for training samples
                                `rows`, in inference mode, channels last, as a NumPy array
"""

from __future__ import annotations

import numpy as np

from bnbench.training.bn import BNSettings
from bnbench.training.spec import batch_order

# Values per forward pass: the chunk of samples whose float64 activations fill about 32 MB (mlp3's first BN
# layer: 13 981 samples; a CNN's 26 x 26 x 32 conv output: 193), at least FIRST_CHUNK samples.
CHUNK_VALUES = 2 ** 22
FIRST_CHUNK = 64  # the first pass, which measures a sample's size
# A run without moving statistics, or one that diverged (its statistics are not finite): nothing measured.
NOT_MEASURED = {"population_test_loss": None, "population_test_accuracy": None, "bn_statistics": []}
GAP_KEYS = ("last_batch_mean_gap", "last_batch_log_std_ratio", "population_mean_gap", "population_log_std_ratio")


def moments(trainer, rows: np.ndarray, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance (float64) of `layer`'s inputs over training samples `rows`."""
    count, mean, m2, first, chunk = 0, 0.0, 0.0, 0, FIRST_CHUNK
    while first < len(rows):
        x = trainer.norm_inputs(rows[first:first + chunk], layer).astype(np.float64)
        first += chunk
        chunk = max(FIRST_CHUNK, CHUNK_VALUES // max(1, x[0].size))
        x = x.reshape(-1, x.shape[-1])
        chunk_mean = x.mean(axis=0)
        chunk_m2 = ((x - chunk_mean) ** 2).sum(axis=0)
        total = count + len(x)
        delta = chunk_mean - mean
        mean = mean + delta * len(x) / total
        m2 = m2 + chunk_m2 + delta ** 2 * count * len(x) / total
        count = total
    return mean, m2 / count


def statistics_over(trainer, rows: np.ndarray, moving: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every BN layer's input statistics over `rows`, layer by layer, each layer normalising with its own
    statistics over `rows` before the next is measured (BN's training mode on `rows` as one batch). Leaves
    the trainer with these statistics in place."""
    found = []
    for layer in range(len(moving)):
        found.append(moments(trainer, rows, layer))
        trainer.set_moving_statistics(found + moving[len(found):])
    return found


def gap(statistics: tuple, moving: tuple, epsilon: float) -> tuple[float, float]:
    """(mean_gap, log_std_ratio) of `statistics` against `moving` (see the module docstring)."""
    (mean, variance), (moving_mean, moving_variance) = statistics, (np.asarray(m, np.float64) for m in moving)
    scale = np.sqrt(moving_variance + epsilon)
    log_std_ratio = 0.5 * np.abs(np.log((variance + epsilon) / (moving_variance + epsilon)))
    return float(np.mean(np.abs(mean - moving_mean) / scale)), float(np.mean(log_std_ratio))


def last_batch_rows(run: dict, epoch: int, n_train: int) -> np.ndarray:
    """The training samples of `epoch`'s last mini-batch (the order the run trained in; the remainder batch
    when the batch size does not divide the training set)."""
    order = batch_order(run.get("order_seed", run["seed"]), epoch, n_train)
    last = (n_train - 1) // run["batch_size"] * run["batch_size"]
    return order[last:]


def bn_diagnostics(trainer, run: dict, n_train: int, epoch: int) -> dict:
    """population_test_loss / population_test_accuracy and the per-layer gaps (`bn_statistics`: one entry per
    BN layer) of a trained run; None and [] for a run without moving statistics. The trainer's moving
    statistics are put back afterwards."""
    moving = trainer.moving_statistics()
    if not moving:
        return dict(NOT_MEASURED)
    epsilon = BNSettings.from_variant(run["bn"]).epsilon
    try:
        population = statistics_over(trainer, np.arange(n_train), moving)
        loss, accuracy = trainer.evaluate("test")
        last_batch = statistics_over(trainer, last_batch_rows(run, epoch, n_train), moving)
    finally:
        trainer.set_moving_statistics(moving)
    layers = []
    for index, (mine, batch, whole) in enumerate(zip(moving, last_batch, population)):
        values = (*gap(batch, mine, epsilon), *gap(whole, mine, epsilon))
        layers.append({"layer": index + 1, "channels": int(len(mine[0])), **dict(zip(GAP_KEYS, values))})
    return {"population_test_loss": loss, "population_test_accuracy": accuracy, "bn_statistics": layers}
