"""bn_diagnostics.csv: BN's train/inference gap per cell (dataset x arch x variant x framework x sweep point)
and BN layer, from the runs' diagnostics (bnbench.training.diagnostics). No claim rests on it: it shows how
much test accuracy BN's moving statistics cost against population statistics of the same weights
(`population_gain`, paired by run, mean with its 95 % CI) and how far the last mini-batch's and the
training set's statistics lie from the moving ones, layer by layer (means over the cell's runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnbench import sweeps
from bnbench.analysis import stats
from bnbench.results import GROUP_KEYS, RUN_KEYS
from bnbench.training.diagnostics import GAP_KEYS

CELL_COLUMNS = ["n_runs", "test_accuracy", "population_test_accuracy", "population_gain", "population_gain_ci_low",
                "population_gain_ci_high"]
COLUMNS = [*GROUP_KEYS, *CELL_COLUMNS, "layer", "channels", *GAP_KEYS]
NO_VALUE = -1.0  # stands in for a base run's empty sweep_value while tables are joined (NaN never matches)


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(sweep_value=frame["sweep_value"].fillna(NO_VALUE))


def table(summary: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """One row per cell x BN layer over the runs with BN diagnostics (crossed runs are left to variance.csv)."""
    measured = summary["population_test_accuracy"].notna() if "population_test_accuracy" in summary else False
    runs = _keyed(summary[measured & (summary["sweep"] != sweeps.ORDER_SEED)])
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    runs = runs.assign(population_gain=runs["population_test_accuracy"] - runs["test_accuracy"])
    cells = []
    for key, group in runs.groupby(list(GROUP_KEYS), sort=False):
        low, high = stats.mean_ci(group["population_gain"])
        cells.append({**dict(zip(GROUP_KEYS, key)), "n_runs": len(group),
                      **group[["test_accuracy", "population_test_accuracy", "population_gain"]].mean().to_dict(),
                      "population_gain_ci_low": low, "population_gain_ci_high": high})
    layers = _keyed(layers).merge(runs[list(RUN_KEYS)], on=list(RUN_KEYS))
    per_layer = layers.groupby([*GROUP_KEYS, "layer"], sort=False).agg(
        channels=("channels", "first"), **{key: (key, "mean") for key in GAP_KEYS}).reset_index()
    found = pd.DataFrame(cells).merge(per_layer, on=list(GROUP_KEYS), how="left")
    return found.assign(sweep_value=found["sweep_value"].replace(NO_VALUE, np.nan)).reindex(columns=COLUMNS)
