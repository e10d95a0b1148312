"""Convergence metrics of one run, from its per-epoch records."""

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
