"""Where run-to-run variance comes from (variance.csv): initialization, data order, or their interaction.

"init" is the variance due to the initialization seed (the initial weights), "order" the variance due to the
data-order seed (batch order and dropout masks), "interaction" what depends on the pair (a seed of one kind
being lucky only with some seeds of the other). Chosen variants run a crossed grid: every init seed x every
order seed, one deterministic run per cell, so y_ij = mu + a_i + b_j + (ab)_ij with random a, b and ab.
Components are the ANOVA (expected-mean-squares) estimators of that model, truncated at 0; with one run per
cell, run-to-run noise cannot be told apart from the interaction and is part of it. Shares (component /
total) get 95 % percentile intervals from the pigeonhole bootstrap of Owen (2007): init seeds and order
seeds resampled independently, since both are random samples and the grid's cells are not independent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnbench import sweeps
from bnbench.analysis import stats

ORDER_SEED = sweeps.ORDER_SEED  # the `sweep` of crossed runs
METRICS = ("test_accuracy", "best_val_accuracy", "val_accuracy_auc", "test_loss", "train_loss",
           "epochs_to_target", "population_test_accuracy")  # decomposed where the table has the column
SOURCES = ("init", "order", "interaction")
SHARES = tuple(f"{source}_share" for source in SOURCES)
CELL = ["dataset", "arch", "variant", "framework"]
N_RESAMPLES = 2000
LEVEL = 0.95
ESTIMATOR = "two-way crossed random-effects ANOVA (EMS, truncated at 0); pigeonhole bootstrap 95% percentile CI"
VARIANCE_COLUMNS = (*CELL, "metric", "n_init", "n_order", "n_runs", "mean", "total_variance",
                    "init_variance", "order_variance", "interaction_variance",
                    *(f"{share}{end}" for share in SHARES for end in ("", "_low", "_high")), "estimator")
BATCH_CELLS = 2 ** 22  # resampled grid cells held in memory at once by share_intervals


def _checked(grid) -> np.ndarray:
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 2 or min(grid.shape) < 2 or not np.isfinite(grid).all():
        raise ValueError(f"need a finite I x J grid with I, J >= 2, got shape {grid.shape}")
    return grid


def _variances(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Init, order and interaction components of each I x J grid in `grids` (shape (..., I, J))."""
    n_init, n_order = grids.shape[-2:]
    # Components are shift-invariant; shifting makes a constant grid exactly 0 instead of rounding noise.
    grids = grids - grids[..., :1, :1]
    grand = grids.mean(axis=(-2, -1), keepdims=True)
    row_means = grids.mean(axis=-1, keepdims=True)
    column_means = grids.mean(axis=-2, keepdims=True)
    ms_init = n_order * ((row_means - grand) ** 2).sum(axis=(-2, -1)) / (n_init - 1)
    ms_order = n_init * ((column_means - grand) ** 2).sum(axis=(-2, -1)) / (n_order - 1)
    residuals = grids - row_means - column_means + grand
    ms_interaction = (residuals ** 2).sum(axis=(-2, -1)) / ((n_init - 1) * (n_order - 1))
    init = np.maximum(0.0, (ms_init - ms_interaction) / n_order)
    order = np.maximum(0.0, (ms_order - ms_interaction) / n_init)
    return init, order, ms_interaction


def components(grid: np.ndarray) -> dict:
    """Variance components of an I x J grid of one metric (rows: init seeds, columns: order seeds).

    ANOVA (method-of-moments, expected-mean-squares) estimators of the crossed random-effects model without
    replication y_ij = mu + a_i + b_j + (ab)_ij, from the mean squares
      MS_A = J sum_i (ybar_i. - ybar..)^2 / (I - 1),  MS_B = I sum_j (ybar_.j - ybar..)^2 / (J - 1),
      MS_AB = sum_ij (y_ij - ybar_i. - ybar_.j + ybar..)^2 / ((I - 1)(J - 1)):
    init = max(0, (MS_A - MS_AB) / J), order = max(0, (MS_B - MS_AB) / I), interaction = MS_AB.
    The truncation at 0 (a negative estimate means "no detectable variance") biases init and order slightly
    upward. Runs are deterministic and each cell has one run, so interaction and any run-to-run noise are
    one term. Returns init, order, interaction, total (their sum) and the shares component / total (NaN
    when total is 0).
    """
    init, order, interaction = (float(part) for part in _variances(_checked(grid)))
    total = init + order + interaction
    parts = {"init": init, "order": order, "interaction": interaction, "total": total}
    return {**parts, **{f"{source}_share": parts[source] / total if total > 0 else np.nan for source in SOURCES}}


def _resampled_shares(grid: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Shares (resamples x 3) of grid[rows[k]][:, columns[k]] for each k; NaN where the total is 0."""
    init, order, interaction = _variances(grid[rows[:, :, None], columns[:, None, :]])
    parts = np.stack([init, order, interaction], axis=1)
    total = parts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, parts / total, np.nan)


def share_intervals(grid: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0,
                    level: float = LEVEL) -> dict:
    """Percentile CIs of the init, order and interaction shares by the pigeonhole (two-way) bootstrap of
    Owen (2007): each resample draws I rows and, independently, J columns with replacement and recomputes
    the components of grid[rows][:, cols]. Resamples with total 0 (e.g. one row drawn I times from a grid
    without order effect) are skipped; NaN intervals when all are. Seeded: the same seed, the same CIs."""
    grid = _checked(grid)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, grid.shape[0], size=(n_resamples, grid.shape[0]))
    columns = rng.integers(0, grid.shape[1], size=(n_resamples, grid.shape[1]))
    batch = max(1, BATCH_CELLS // grid.size)  # bounded memory for large grids, batched for speed
    shares = np.concatenate([_resampled_shares(grid, rows[k:k + batch], columns[k:k + batch])
                             for k in range(0, n_resamples, batch)])
    shares = shares[~np.isnan(shares).any(axis=1)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(shares, [tail, 100 - tail], axis=0) if len(shares) else np.full((2, 3), np.nan)
    return {f"{share}{end}": float(bound[k]) for k, share in enumerate(SHARES)
            for end, bound in (("_low", low), ("_high", high))}


def complete_grid(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The init seed x order seed grid of `metric` over one cell's crossed runs, cut to complete seeds.

    A missed target counts as epochs + 1 (bnbench.analysis.stats.censored); other missing or non-finite
    values (lost runs, diverged losses) leave gaps. Order seeds without any value are dropped first (they
    did not run for this metric), then every init seed with a gap. That rule is fixed in advance, so the
    kept grid never depends on which choice gives the nicer estimate; every order seed left is complete.
    Dropping init seeds (not order seeds) for a scattered gap is a convention: both lose a whole line.
    """
    values = runs.assign(value=stats.censored(runs, metric).astype(float))
    duplicated = values.duplicated(["seed", "sweep_value"])
    if duplicated.any():
        raise ValueError(f"{metric}: more than one crossed run for (seed, order seed) "
                         f"{values.loc[duplicated, ['seed', 'sweep_value']].to_numpy().tolist()}")
    grid = values.pivot(index="seed", columns="sweep_value", values="value")
    grid = grid.loc[:, np.isfinite(grid).any(axis=0)]
    return grid[np.isfinite(grid).all(axis=1)]


def _row(key: tuple, runs: pd.DataFrame, metric: str) -> dict:
    """One row of variance.csv; NaN estimates where fewer than 2 x 2 complete seeds remain. n_runs counts
    the cell's crossed runs, n_init x n_order the ones used (mean is over those)."""
    grid = complete_grid(runs, metric)
    row = {**dict.fromkeys(VARIANCE_COLUMNS, np.nan), **dict(zip(CELL, key)), "metric": metric,
           "n_init": grid.shape[0], "n_order": grid.shape[1], "n_runs": len(runs), "estimator": ESTIMATOR}
    if grid.size:
        row["mean"] = float(grid.to_numpy().mean())
    if min(grid.shape) >= 2:
        parts = components(grid.to_numpy())
        row.update({"total_variance": parts["total"], **{f"{s}_variance": parts[s] for s in SOURCES},
                    **{share: parts[share] for share in SHARES}, **share_intervals(grid.to_numpy())})
    return row


def variance_table(summary: pd.DataFrame) -> pd.DataFrame:
    """variance.csv: one row per dataset x arch x variant x framework x metric over the crossed runs
    (sweep == ORDER_SEED), in input order; the columns only when there are no crossed runs."""
    crossed = summary[summary["sweep"] == ORDER_SEED] if "sweep" in summary else summary.iloc[:0]
    if crossed.empty:
        return pd.DataFrame(columns=list(VARIANCE_COLUMNS))
    metrics = [metric for metric in METRICS if metric in crossed.columns]
    rows = [_row(key, runs, metric) for key, runs in crossed.groupby(CELL, sort=False, dropna=False)
            for metric in metrics]
    return pd.DataFrame(rows, columns=list(VARIANCE_COLUMNS))
