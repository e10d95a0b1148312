"""Convergence metrics of one run, from its per-epoch records (AlgoPerf style: a missed target is
recorded as such, never hidden)."""

from __future__ import annotations


def epochs_to_target(history: list[dict], target: float) -> int | None:
    """First epoch whose validation accuracy reaches the target; None when it never does."""
    return next((r["epoch"] for r in history if r["val_accuracy"] >= target), None)


def seconds_to_target(history: list[dict], target: float) -> float | None:
    """Training seconds (sum of epoch times) up to and including the epoch that reached the target."""
    reached = epochs_to_target(history, target)
    if reached is None:
        return None
    return sum(r["epoch_seconds"] for r in history[:reached])


def val_accuracy_auc(history: list[dict], epochs: int) -> float:
    """Area under the validation-accuracy curve divided by the planned epochs (in [0, 1]).

    A run stopped early (diverged) contributes nothing for its missing epochs.
    """
    return sum(r["val_accuracy"] for r in history) / epochs


def run_metrics(history: list[dict], target: float, epochs: int) -> dict:
    reached = epochs_to_target(history, target)
    return {
        "epochs_to_target": reached,
        "seconds_to_target": seconds_to_target(history, target),
        "reached_target": reached is not None,
        "val_accuracy_auc": val_accuracy_auc(history, epochs),
        "best_val_accuracy": max(r["val_accuracy"] for r in history),
        "epochs_trained": len(history),
        "total_train_seconds": sum(r["epoch_seconds"] for r in history),
    }
