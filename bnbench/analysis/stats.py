"""Interval estimates over seeds, following rliable: percentile-bootstrap CIs, interquartile mean,
probability of improvement; never a bare mean of a handful of seeds. Seeded, so reports reproduce.

Runs that never reach the target: for per-group statistics of epochs/seconds to target we summarise
the runs that reached it and report the fraction that did; for comparisons a miss counts as
`epochs + 1` epochs (worse than any run that got there), so misses weigh in instead of vanishing.
Diverged runs (loss NaN/inf, stopped early) are never dropped: they count in n_runs and n_diverged,
count as missing the target, keep the accuracies of the stopped network, and leave out only their
non-finite losses (so `n` < `n_runs` for the loss metrics).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnbench.results import GROUP_KEYS

N_RESAMPLES = 10_000
LEVEL = 0.95
# Metric -> True when higher is better.
METRICS = {
    "test_accuracy": True, "best_val_accuracy": True, "val_accuracy": True, "val_accuracy_auc": True,
    "test_loss": False, "train_loss": False, "train_accuracy": True,
    "epochs_to_target": False, "seconds_to_target": False, "first_epoch_to_target": False,
    "median_epoch_seconds": False, "warmup_seconds": False, "train_test_gap": False,
}
TARGET_METRICS = {"epochs_to_target", "seconds_to_target", "first_epoch_to_target"}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _percentiles(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def iqm(values, axis=None):
    """Interquartile mean: the mean of the middle 50 % (25 % trimmed from each end)."""
    from scipy import stats as sps  # here, not at the top: the Snakefile imports this module (via plots)

    return sps.trim_mean(values, 0.25, axis=axis)


def mean_ci(values, level: float = LEVEL) -> tuple[float, float]:
    """Student-t interval of the mean: the CI bnbench reports for every mean and mean difference.

    Chosen by a coverage simulation (tests/test_stats.py): at n = 5 and 10 it covers the true mean 95 %
    of the time on normal data and 93-94 % on skew-normal (alpha 4) data, where the percentile bootstrap
    covers about 84 % at n = 5. On lognormal (sigma 0.5) data it covers about 91-92 %. With one value the
    interval is undefined (NaN); with all values equal it is that value.
    """
    from scipy import stats as sps

    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float("nan"), float("nan")
    mean, sd = values.mean(), values.std(ddof=1)
    half = sps.t.ppf(0.5 + level / 2, values.size - 1) * sd / np.sqrt(values.size)
    return float(mean - half), float(mean + half)


def bootstrap_ci(values, statistic=np.mean, n_resamples: int = N_RESAMPLES, seed: int = 0,
                 level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of `statistic` (called with axis=1 on a resample matrix)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    samples = values[_rng(seed).integers(0, values.size, size=(n_resamples, values.size))]
    return _percentiles(statistic(samples, axis=1), level)


def probability_of_improvement(x, y) -> float:
    """P(X > Y) + 0.5 P(X = Y) over all pairs (the Mann-Whitney U statistic / (n m))."""
    x, y = np.asarray(x, float)[:, None], np.asarray(y, float)[None, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))


def probability_of_improvement_ci(x, y, n_resamples: int = N_RESAMPLES, seed: int = 0,
                                  level: float = LEVEL) -> tuple[float, float]:
    """Stratified bootstrap: resample each group on its own, recompute P(X > Y)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = _rng(seed)
    xs = x[rng.integers(0, x.size, size=(n_resamples, x.size))]
    ys = y[rng.integers(0, y.size, size=(n_resamples, y.size))]
    wins = (xs[:, :, None] > ys[:, None, :]) + 0.5 * (xs[:, :, None] == ys[:, None, :])
    return _percentiles(wins.mean(axis=(1, 2)), level)


def wilcoxon_p(differences) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (1.0 when all are zero)."""
    d = np.asarray(differences, float)
    if d.size == 0:
        return float("nan")
    if not np.any(d):
        return 1.0
    from scipy import stats as sps

    return float(sps.wilcoxon(d, zero_method="zsplit").pvalue)


def censored(summary: pd.DataFrame, metric: str) -> pd.Series:
    """Metric values with a missed target counted as one epoch past the end (see module docstring)."""
    if metric in ("epochs_to_target", "first_epoch_to_target"):
        return summary[metric].fillna(summary["run.epochs"] + 1)
    if metric == "seconds_to_target":
        return summary[metric].fillna(np.inf)
    return summary[metric]


def describe(values: np.ndarray, seed: int = 0) -> dict:
    """n, mean, sd, median, IQM and bootstrap CIs of the mean and the IQM."""
    values = np.asarray(values, float)
    if values.size == 0:
        return {"mean": np.nan, "std": np.nan, "median": np.nan, "iqm": np.nan,
                "mean_ci_low": np.nan, "mean_ci_high": np.nan, "iqm_ci_low": np.nan, "iqm_ci_high": np.nan}
    mean_ci_, iqm_ci = mean_ci(values), bootstrap_ci(values, statistic=iqm, seed=seed)
    return {"mean": values.mean(), "std": values.std(ddof=1) if values.size > 1 else np.nan,
            "median": float(np.median(values)), "iqm": float(iqm(values)),
            "mean_ci_low": mean_ci_[0], "mean_ci_high": mean_ci_[1], "iqm_ci_low": iqm_ci[0], "iqm_ci_high": iqm_ci[1]}


def aggregate(summary: pd.DataFrame, metrics=None) -> pd.DataFrame:
    """stats.csv (base runs) and sensitivity.csv: one row per dataset x arch x variant x framework x sweep x
    sweep_value x metric."""
    rows = []
    for key, group in summary.groupby(list(GROUP_KEYS), sort=False, dropna=False):  # base runs: sweep_value NaN
        reached = group["epochs_to_target"].notna()
        for metric in metrics or METRICS:
            values = group[metric].dropna().to_numpy(float)
            rows.append({**dict(zip(GROUP_KEYS, key)), "metric": metric, "n_runs": len(group), "n": values.size,
                         "fraction_reached": reached.mean(), "n_diverged": int(group["diverged"].sum()),
                         **describe(values)})
    return pd.DataFrame(rows)


def paired(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Runs of a and b with the same seed: columns seed, value_a, value_b (a missed target: `censored`)."""
    left = a.assign(value=censored(a, metric))[["seed", "value"]]
    right = b.assign(value=censored(b, metric))[["seed", "value"]]
    return left.merge(right, on="seed", suffixes=("_a", "_b"))


def compare(a: pd.DataFrame, b: pd.DataFrame, metric: str, seed: int = 0) -> dict:
    """a vs b on one metric, paired by seed: mean difference (a - b) with CI, P(a better than b)
    with CI (Mann-Whitney form, direction-aware), Wilcoxon signed-rank p."""
    pairs = paired(a, b, metric)
    if pairs.empty:
        return {}
    diff = pairs["value_a"] - pairs["value_b"]
    finite = diff[np.isfinite(diff)].to_numpy(float)
    sign = 1 if METRICS[metric] else -1
    better_a, better_b = sign * pairs["value_a"].to_numpy(float), sign * pairs["value_b"].to_numpy(float)
    low, high = mean_ci(finite)
    poi_low, poi_high = probability_of_improvement_ci(better_a, better_b, seed=seed)
    return {"metric": metric, "n_pairs": len(pairs), "mean_difference": finite.mean() if finite.size else np.nan,
            "difference_ci_low": low, "difference_ci_high": high,
            "p_improvement": probability_of_improvement(better_a, better_b),
            "p_improvement_ci_low": poi_low, "p_improvement_ci_high": poi_high,
            "wilcoxon_p": wilcoxon_p(np.nan_to_num(diff.to_numpy(float), posinf=1e12, neginf=-1e12))}


COMPARISON_COLUMNS = ["comparison", "dataset", "arch", "framework", "variant", "against", "metric", "n_pairs",
                      "mean_difference", "difference_ci_low", "difference_ci_high", "p_improvement",
                      "p_improvement_ci_low", "p_improvement_ci_high", "wilcoxon_p"]


def comparisons(summary: pd.DataFrame, baseline: str = "none", metrics=None) -> pd.DataFrame:
    """comparisons.csv: every variant vs the baseline (same dataset x arch x framework), and
    Keras vs PyTorch per variant."""
    metrics = metrics or ["test_accuracy", "val_accuracy_auc", "epochs_to_target", "best_val_accuracy"]
    rows = []
    for (dataset, arch, framework), group in summary.groupby(["dataset", "arch", "framework"], sort=False):
        base = group[group.variant == baseline]
        for variant in group.variant.unique():
            if variant == baseline or base.empty:
                continue
            for metric in metrics:
                result = compare(group[group.variant == variant], base, metric)
                if result:
                    rows.append({"comparison": "variant_vs_baseline", "dataset": dataset, "arch": arch,
                                 "framework": framework, "variant": variant, "against": baseline, **result})
    for (dataset, arch, variant), group in summary.groupby(["dataset", "arch", "variant"], sort=False):
        keras, torch = group[group.framework == "keras"], group[group.framework == "torch"]
        for metric in metrics:
            result = compare(keras, torch, metric) if len(keras) and len(torch) else {}
            if result:
                rows.append({"comparison": "keras_vs_torch", "dataset": dataset, "arch": arch,
                             "framework": "keras", "variant": variant, "against": "torch", **result})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)  # columns even when nothing pairs up
