"""What BN buys: sensitivity of each variant to the swept settings (sensitivity.csv) and its stability
metrics over seeds (stability.csv), which the stability claims compare.

A sweep varies one axis around a dataset's own settings, so each axis' curve is its sweep runs plus the
base runs (at the base value) of the same variants.

Stability metrics, per dataset x arch x variant x framework, each a mean over seeds with its 95 % Student-t
CI (bnbench.analysis.stats.mean_ci), computed from per-seed values:
  max_stable_learning_rate  per seed, the largest swept learning rate whose run reaches the target (sustained,
                            without diverging); a seed with none counts one grid step below the smallest.
                            Averaged on log10 (the grid is logarithmic): the table shows the geometric mean.
  unstable_fraction         per seed, the share of its learning-rate runs that diverged or ended at or below
                            chance + 0.05 train accuracy (a collapse with a finite loss).
  init_scale_spread         max - min over init scales of the mean test accuracy. Per seed: its accuracy at
                            the init scale with the highest mean minus at the one with the lowest, so that
                            the mean over seeds is exactly that spread (the two scales are chosen on the same
                            data: a slight upward bias, as for any max - min).
  dropout_gain              best mean test accuracy with dropout - without; per seed as above (the best rate
                            chosen by the means).
  small_batch_drop          test accuracy at the largest minus at the smallest swept batch size (positive:
                            small batches lose accuracy).
  small_batch_accuracy      test accuracy at the smallest swept batch size (the normalizers' small-batch claim).
  batch_size_spread         max - min over batch sizes of the mean test accuracy, per seed as init_scale_spread
                            (how much the accuracy depends on the batch size).
A metric is NaN where its axis was not swept for the group (or only one of its values ran).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnbench import sweeps
from bnbench.analysis import stats
from bnbench.results import GROUP_KEYS

SENSITIVITY_METRICS = ["test_accuracy", "best_val_accuracy", "epochs_to_target", "train_test_gap"]
# Stability metric -> True when higher is better (the direction the claims' "better" follows).
STABILITY_METRICS = {"max_stable_learning_rate": True, "unstable_fraction": False, "init_scale_spread": False,
                     "dropout_gain": False, "small_batch_drop": False, "small_batch_accuracy": True,
                     "batch_size_spread": False}
LOG_METRICS = {"max_stable_learning_rate"}  # averaged and compared on log10
UNSTABLE_MARGIN = 0.05  # train accuracy at or below chance + this counts as a collapse
CELL = ["dataset", "arch", "variant", "framework"]


def points(summary: pd.DataFrame) -> pd.DataFrame:
    """Every run of every swept axis' curve: the axis' sweep runs and, at the base value, the base runs of
    the cells (dataset x arch x variant x framework) that swept it; `sweep_value` is the run's effective
    value of the axis."""
    base = summary[summary["sweep"] == sweeps.BASE]
    parts = []
    for axis in [a for a in sweeps.AXES if a in set(summary["sweep"])]:
        swept = summary[summary["sweep"] == axis]
        cells = swept[CELL].drop_duplicates()
        at_base = base.merge(cells, on=CELL).assign(sweep=axis)
        curve = pd.concat([swept, at_base], ignore_index=True)
        parts.append(curve.assign(sweep_value=curve[sweeps.setting_column(axis)].astype(float)))
    if not parts:
        return summary.iloc[0:0]
    return pd.concat(parts, ignore_index=True).sort_values([*CELL, "sweep", "sweep_value", "seed"], kind="stable")


def sensitivity_table(summary: pd.DataFrame) -> pd.DataFrame:
    """sensitivity.csv: one row per dataset x arch x variant x framework x sweep x sweep_value x metric, with
    n_runs, n_diverged, fraction_reached, the mean and its 95 % CI (stats.aggregate's columns)."""
    frame = points(summary)
    if frame.empty:
        return pd.DataFrame(columns=[*GROUP_KEYS, "metric", "n_runs", "n", "fraction_reached", "n_diverged",
                                     "mean", "std", "median", "iqm", "mean_ci_low", "mean_ci_high",
                                     "iqm_ci_low", "iqm_ci_high"])
    return stats.aggregate(frame, SENSITIVITY_METRICS)


def _curve(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """seed x sweep value table of `metric` (seeds that ran every value only; empty unless at least two
    values and one such seed)."""
    table = runs.pivot_table(index="seed", columns="sweep_value", values=metric, aggfunc="first").dropna()
    return table if table.shape[1] >= 2 else table.iloc[0:0]


def _chosen_spread(table: pd.DataFrame, high, low) -> pd.Series:
    return table[high] - table[low]


def _max_stable(runs: pd.DataFrame) -> pd.Series:
    stable = runs.assign(stable=runs["epochs_to_target"].notna() & ~runs["diverged"].astype(bool))
    grid = np.sort(stable["sweep_value"].unique())
    below = grid[0] / (grid[1] / grid[0]) if len(grid) > 1 else grid[0] / 10  # one grid step below the smallest
    best = stable[stable.stable].groupby("seed")["sweep_value"].max()
    return best.reindex(stable["seed"].unique()).fillna(below)


def _unstable(runs: pd.DataFrame) -> pd.Series:
    chance = runs["chance_accuracy"] if "chance_accuracy" in runs else 0.5
    collapsed = runs["diverged"].astype(bool) | (runs["train_accuracy"] <= chance + UNSTABLE_MARGIN)
    return collapsed.groupby(runs["seed"]).mean()


def _spread(runs: pd.DataFrame) -> pd.Series:
    table = _curve(runs, "test_accuracy")
    if table.empty:
        return pd.Series(dtype=float)
    means = table.mean()
    return _chosen_spread(table, means.idxmax(), means.idxmin())


def _dropout_gain(runs: pd.DataFrame) -> pd.Series:
    table = _curve(runs, "test_accuracy")
    if table.empty or 0.0 not in table.columns:
        return pd.Series(dtype=float)
    means = table.drop(columns=[0.0]).mean()
    return _chosen_spread(table, means.idxmax(), 0.0)


def _small_batch_drop(runs: pd.DataFrame) -> pd.Series:
    table = _curve(runs, "test_accuracy")
    if table.empty:
        return pd.Series(dtype=float)
    return _chosen_spread(table, table.columns.max(), table.columns.min())


def _small_batch_accuracy(runs: pd.DataFrame) -> pd.Series:
    table = _curve(runs, "test_accuracy")
    return table[table.columns.min()] if not table.empty else pd.Series(dtype=float)


PER_SEED = {"learning_rate": {"max_stable_learning_rate": _max_stable, "unstable_fraction": _unstable},
            "init_scale": {"init_scale_spread": _spread}, "dropout": {"dropout_gain": _dropout_gain},
            "batch_size": {"small_batch_drop": _small_batch_drop, "small_batch_accuracy": _small_batch_accuracy,
                           "batch_size_spread": _spread}}


def per_seed(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x arch x variant x framework x seed with each stability metric's per-seed value
    (NaN where its axis was not swept, or had fewer than two values)."""
    rows = {}
    frame = points(summary)
    for (*cell, axis), runs in frame.groupby([*CELL, "sweep"], sort=False):
        if runs["sweep_value"].nunique() < 2:
            continue
        for metric, compute in PER_SEED.get(axis, {}).items():
            for seed, value in compute(runs).items():
                rows.setdefault((*cell, seed), {})[metric] = float(value)
    table = pd.DataFrame([{**dict(zip([*CELL, "seed"], key)), **values} for key, values in rows.items()])
    return table.reindex(columns=[*CELL, "seed", *STABILITY_METRICS])


def _log(metric: str, values: np.ndarray) -> np.ndarray:
    return np.log10(values) if metric in LOG_METRICS else values


def _unlog(metric: str, value: float) -> float:
    return 10 ** value if metric in LOG_METRICS and np.isfinite(value) else value


def stability_table(summary: pd.DataFrame) -> pd.DataFrame:
    """stability.csv: per dataset x arch x variant x framework, each stability metric's mean over seeds with
    its 95 % CI (`<metric>_ci_low`, `<metric>_ci_high`) and the seeds it rests on (`<metric>_n`)."""
    seeds = per_seed(summary)
    columns = [*CELL, *(f"{m}{suffix}" for m in STABILITY_METRICS for suffix in ("", "_ci_low", "_ci_high", "_n"))]
    rows = []
    for cell, group in seeds.groupby(CELL, sort=False):
        row = dict(zip(CELL, cell))
        for metric in STABILITY_METRICS:
            values = _log(metric, group[metric].dropna().to_numpy(float))
            low, high = stats.mean_ci(values)
            mean = values.mean() if values.size else math.nan
            row.update({metric: _unlog(metric, mean), f"{metric}_ci_low": _unlog(metric, low),
                        f"{metric}_ci_high": _unlog(metric, high), f"{metric}_n": int(values.size)})
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def paired_differences(seeds: pd.DataFrame, dataset: str, arch: str, variant: str, against: str,
                       framework: str, metric: str) -> np.ndarray:
    """Per seed, `variant`'s stability metric minus `against`'s (log10 for LOG_METRICS), signed so that
    positive means `variant` is better; seeds with both values only."""
    def values(name):
        cell = seeds[(seeds.dataset == dataset) & (seeds.arch == arch) & (seeds.variant == name)
                     & (seeds.framework == framework)]
        return cell.set_index("seed")[metric].dropna()

    both = pd.concat([values(variant), values(against)], axis=1, join="inner").to_numpy(float)
    if both.size == 0:
        return np.array([])
    sign = 1 if STABILITY_METRICS[metric] else -1
    return sign * (_log(metric, both[:, 0]) - _log(metric, both[:, 1]))
