"""Convergence metrics of one run, from its per-epoch records (AlgoPerf style: a missed target is
recorded as such, never hidden).

Reaching the target means *staying* there: epochs_to_target is the first epoch from which validation
accuracy stays at or above the target until the last planned epoch. So it depends on the horizon (a run
that dips below the target in its last epoch has not reached it), and a run that stopped early (diverged)
never reaches it. The first crossing, which rewards noisy curves, is kept as first_epoch_to_target.
"""

from __future__ import annotations

import statistics


def first_epoch_to_target(history: list[dict], target: float) -> int | None:
    """First epoch whose validation accuracy reaches the target; None when none does."""
    return next((r["epoch"] for r in history if r["val_accuracy"] >= target), None)


def epochs_to_target(history: list[dict], target: float, epochs: int) -> int | None:
    """First epoch from which validation accuracy stays >= target through the last of `epochs` planned
    epochs; None when the run never settles there or stopped before the end."""
    if len(history) < epochs:
        return None
    below = [r["epoch"] for r in history if not r["val_accuracy"] >= target]  # NaN counts as below
    settled = below[-1] + 1 if below else 1
    return settled if settled <= epochs else None


def ladder(final_accuracies, quantiles=(10, 25, 50, 75, 90)) -> list[float]:
    """Targets derived from a baseline's final validation accuracies: their percentiles, rounded to 0.001
    (a ladder from a target most runs reach to one few do)."""
    import numpy as np

    return sorted({round(float(np.percentile(final_accuracies, q)), 3) for q in quantiles})


def warmup_seconds(history: list[dict]) -> float | None:
    """How much longer the first epoch took than a typical later one (graph tracing, allocation):
    epoch 1's time minus the median of the others, at least 0; None with a single epoch."""
    if len(history) < 2:
        return None
    later = statistics.median(r["epoch_seconds"] for r in history[1:])
    return max(0.0, history[0]["epoch_seconds"] - later)


def seconds_to_target(history: list[dict], reached: int | None) -> float | None:
    """Training seconds up to and including epoch `reached`, without the first epoch's warm-up."""
    if reached is None:
        return None
    return sum(r["epoch_seconds"] for r in history[:reached]) - (warmup_seconds(history) or 0.0)


def val_accuracy_auc(history: list[dict], epochs: int) -> float:
    """Area under the validation-accuracy curve divided by the planned epochs (in [0, 1]).

    A run stopped early (diverged) contributes nothing for its missing epochs.
    """
    return sum(r["val_accuracy"] for r in history) / epochs


def run_metrics(history: list[dict], target: float, epochs: int, diverged: bool = False) -> dict:
    reached = None if diverged else epochs_to_target(history, target, epochs)
    return {
        "epochs_to_target": reached,
        "seconds_to_target": seconds_to_target(history, reached),
        "reached_target": reached is not None,
        "first_epoch_to_target": first_epoch_to_target(history, target),
        "val_accuracy_auc": val_accuracy_auc(history, epochs),
        "best_val_accuracy": max(r["val_accuracy"] for r in history),
        "epochs_trained": len(history),
        "total_train_seconds": sum(r["epoch_seconds"] for r in history),
        "median_epoch_seconds": statistics.median(r["epoch_seconds"] for r in history),
        "warmup_seconds": warmup_seconds(history),
    }
