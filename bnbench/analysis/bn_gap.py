"""bn_diagnostics.csv: BN's train/inference gap per cell (dataset x arch x variant x framework x sweep point)
and BN layer, from the runs' diagnostics (bnbench.training.diagnostics). No claim rests on it: it shows how
much test accuracy BN's moving statistics cost against population statistics of the same weights
(`population_gain`, paired by run, mean with its 95 % CI) and how far the last mini-batch's and the
training set's statistics lie from the moving ones, layer by layer (means over the cell's runs)."""

from __future__ import annotations

import pandas as pd

from bnbench import sweeps
from bnbench.analysis import stats
from bnbench.results import GROUP_KEYS, RUN_KEYS
from bnbench.training.diagnostics import GAP_KEYS

CELL_COLUMNS = ["n_runs", "test_accuracy", "population_test_accuracy", "population_gain", "population_gain_ci_low",
                "population_gain_ci_high"]
COLUMNS = [*GROUP_KEYS, *CELL_COLUMNS, "layer", "channels", *GAP_KEYS]


def table(summary: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """One row per cell x BN layer over the runs with BN diagnostics (crossed runs are left to variance.csv)."""
    measured = summary["population_test_accuracy"].notna() if "population_test_accuracy" in summary else False
    runs = summary[measured & (summary["sweep"] != sweeps.ORDER_SEED)]
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    runs = runs.assign(population_gain=runs["population_test_accuracy"] - runs["test_accuracy"])
    cells = []
    for key, group in runs.groupby(list(GROUP_KEYS), sort=False, dropna=False):  # base runs: sweep_value NaN
        low, high = stats.mean_ci(group["population_gain"])
        cells.append({**dict(zip(GROUP_KEYS, key)), "n_runs": len(group),
                      **group[["test_accuracy", "population_test_accuracy", "population_gain"]].mean().to_dict(),
                      "population_gain_ci_low": low, "population_gain_ci_high": high})
    layers = layers.merge(runs[list(RUN_KEYS)], on=list(RUN_KEYS))  # (pandas joins NaN keys with NaN keys)
    per_layer = layers.groupby([*GROUP_KEYS, "layer"], sort=False, dropna=False).agg(
        channels=("channels", "first"), **{key: (key, "mean") for key in GAP_KEYS}).reset_index()
    return pd.DataFrame(cells).merge(per_layer, on=list(GROUP_KEYS), how="left").reindex(columns=COLUMNS)
