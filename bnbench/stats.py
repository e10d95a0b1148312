"""Interval estimates over seeds (never a bare mean of a handful of seeds)."""

from __future__ import annotations

import numpy as np

N_RESAMPLES = 10_000


def bootstrap_ci(values, level: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0,
                 statistic=np.mean) -> tuple[float, float]:
    """Percentile bootstrap CI of `statistic`; seeded so the report is reproducible.

    NaN values (e.g. never reached the target) are the caller's to handle; an empty input gives NaNs.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    samples = values[rng.integers(0, values.size, size=(n_resamples, values.size))]
    stats = statistic(samples, axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def summarise(frame, by: list[str], column: str):
    """Per group: n, mean and its 95 % bootstrap CI of `column` (NaNs dropped and counted in n_missing)."""
    import pandas as pd

    rows = []
    for key, group in frame.groupby(by, sort=False):
        values = group[column].dropna().to_numpy(dtype=float)
        low, high = bootstrap_ci(values)
        rows.append({**dict(zip(by, key)), "n": len(group), "n_missing": len(group) - len(values),
                     "mean": values.mean() if len(values) else float("nan"), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)
