"""Variance by source (bnbench.analysis.variance): estimator recovery, hand-computed algebra, bootstrap CIs,
and variance.csv from a synthetic summary."""

import itertools
import time

import numpy as np
import pandas as pd
import pytest

from bnbench import sweeps
from bnbench.analysis import variance


def crossed_grid(n_init, n_order, var_init, var_order, var_interaction, seed=0):
    """y_ij = a_i + b_j + e_ij with independent normal effects of the given variances."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, np.sqrt(var_init), (n_init, 1))
    b = rng.normal(0, np.sqrt(var_order), (1, n_order))
    return 10 + a + b + rng.normal(0, np.sqrt(var_interaction), (n_init, n_order))


def test_recovers_known_components_on_a_large_grid():
    parts = variance.components(crossed_grid(300, 300, 4.0, 1.0, 0.25))
    assert parts["init"] == pytest.approx(4.0, rel=0.15)
    assert parts["order"] == pytest.approx(1.0, rel=0.15)
    assert parts["interaction"] == pytest.approx(0.25, rel=0.10)
    assert parts["total"] == pytest.approx(parts["init"] + parts["order"] + parts["interaction"])
    for share, truth in (("init_share", 4 / 5.25), ("order_share", 1 / 5.25), ("interaction_share", 0.25 / 5.25)):
        assert parts[share] == pytest.approx(truth, abs=0.04)


def test_absent_source_gets_a_share_near_zero_never_negative():
    parts = variance.components(crossed_grid(300, 300, 4.0, 0.0, 0.25, seed=4))
    assert 0 <= parts["order"] < 0.01 and 0 <= parts["order_share"] < 0.01
    assert parts["init"] == pytest.approx(4.0, rel=0.15)


def test_additive_grid_has_no_interaction_and_the_sample_variances_of_its_effects():
    rows, columns = np.array([1.0, 2.0, 6.0]), np.array([0.0, 3.0])
    parts = variance.components(rows[:, None] + columns[None, :])
    # var(rows, ddof=1) = (4 + 1 + 9) / 2 = 7; var(columns, ddof=1) = (2.25 + 2.25) / 1 = 4.5
    assert parts["interaction"] == pytest.approx(0, abs=1e-12)
    assert parts["init"] == pytest.approx(7.0) and parts["order"] == pytest.approx(4.5)
    assert parts["init_share"] == pytest.approx(7 / 11.5) and parts["order_share"] == pytest.approx(4.5 / 11.5)


def test_two_by_two_by_hand():
    # grand 3.5; row means 1.5, 5.5; column means 2, 5; residuals +-1.
    # MS_A = 2 (4 + 4) = 16, MS_B = 2 (2.25 + 2.25) = 9, MS_AB = 4 / 1 = 4.
    parts = variance.components(np.array([[1.0, 2.0], [3.0, 8.0]]))
    assert parts["init"] == pytest.approx((16 - 4) / 2) and parts["order"] == pytest.approx((9 - 4) / 2)
    assert parts["interaction"] == pytest.approx(4) and parts["total"] == pytest.approx(12.5)


def test_negative_estimates_are_truncated_at_zero():
    parts = variance.components(np.array([[1.0, -1.0], [-1.0, 1.0]]))  # MS_A = MS_B = 0 < MS_AB = 4
    assert parts["init"] == 0 and parts["order"] == 0 and parts["interaction"] == pytest.approx(4)
    assert parts["interaction_share"] == pytest.approx(1)


def test_constant_grid_has_zero_total_and_undefined_shares():
    parts = variance.components(np.full((5, 5), 0.7))
    assert parts["total"] == 0 and np.isnan(parts["init_share"])
    assert all(np.isnan(v) for v in variance.share_intervals(np.full((5, 5), 0.7), n_resamples=50).values())


@pytest.mark.parametrize("grid", [np.ones((1, 3)), np.ones((3, 1)), np.ones(4), [[1.0, np.nan], [2.0, 3.0]]])
def test_components_reject_grids_that_cannot_be_decomposed(grid):
    with pytest.raises(ValueError):
        variance.components(grid)


def test_share_intervals_contain_the_estimate_and_lie_in_the_unit_interval():
    grid = crossed_grid(5, 5, 4.0, 1.0, 0.25, seed=2)
    parts = variance.components(grid)
    start = time.perf_counter()
    intervals = variance.share_intervals(grid, n_resamples=2000)
    assert time.perf_counter() - start < 1.0
    for share in ("init_share", "order_share", "interaction_share"):
        low, high = intervals[f"{share}_low"], intervals[f"{share}_high"]
        assert 0 <= low <= parts[share] <= high <= 1


def test_share_intervals_narrow_with_more_seeds():
    # Mean widths over a few draws: one 5 x 5 draw can have a near-zero share with a narrow interval.
    def mean_widths(n):
        intervals = [variance.share_intervals(crossed_grid(n, n, 4.0, 1.0, 0.25, seed=s), n_resamples=1000)
                     for s in range(5)]
        return {share: np.mean([i[f"{share}_high"] - i[f"{share}_low"] for i in intervals])
                for share in ("init_share", "order_share", "interaction_share")}

    small, large = mean_widths(5), mean_widths(40)
    for share, width in large.items():
        assert width < small[share] / 2, share


def test_share_intervals_are_seeded():
    grid = crossed_grid(5, 5, 4.0, 1.0, 0.25, seed=4)
    assert variance.share_intervals(grid, seed=7) == variance.share_intervals(grid, seed=7)
    assert variance.share_intervals(grid, seed=7) != variance.share_intervals(grid, seed=8)


def test_resamples_with_zero_total_are_skipped():
    # Only an init effect: a resample drawing the same row twice has total 0, every other one init share 1.
    intervals = variance.share_intervals(np.array([[0.0, 0.0], [1.0, 1.0]]), n_resamples=200)
    assert intervals["init_share_low"] == intervals["init_share_high"] == 1
    assert intervals["order_share_high"] == 0 and intervals["interaction_share_high"] == 0


def test_intervals_follow_the_two_way_bootstrap_distribution():
    # On a 2 x 2 grid each of the 4 x 4 (rows, columns) draws has probability 1/16 > 2.5 %, so the 95 %
    # percentile interval runs from the smallest to the largest share over the draws with a nonzero total.
    # Resampling rows only would never reach init share 1 (the draw of column 1 twice).
    grid = np.array([[0.0, 1.0], [0.0, 3.0]])
    draws = [(rows, columns) for rows in itertools.product(range(2), repeat=2)
             for columns in itertools.product(range(2), repeat=2)]
    parts = [variance.components(grid[np.ix_(rows, columns)]) for rows, columns in draws]
    parts = [p for p in parts if p["total"] > 0]
    intervals = variance.share_intervals(grid, n_resamples=4000)
    for share in ("init_share", "order_share", "interaction_share"):
        assert intervals[f"{share}_low"] == pytest.approx(min(p[share] for p in parts))
        assert intervals[f"{share}_high"] == pytest.approx(max(p[share] for p in parts))
    assert intervals["init_share_high"] == 1


def crossed_runs(variant, framework, n_init=3, n_order=3, seed=0):
    rng = np.random.default_rng(seed)
    return [{"dataset": "circles", "arch": "mlp", "variant": variant, "framework": framework,
             "sweep": variance.ORDER_SEED, "sweep_value": float(order), "seed": init, "run.epochs": 10,
             "test_accuracy": 0.8 + 0.02 * init + 0.01 * order + rng.normal(0, 0.005),
             "epochs_to_target": 5.0}
            for init in range(1, n_init + 1) for order in range(1, n_order + 1)]


def synthetic_summary():
    runs = [run for i, (variant, framework) in
            enumerate([(v, f) for v in ("none", "bn_after") for f in ("keras", "torch")])
            for run in crossed_runs(variant, framework, seed=i)]
    summary = pd.DataFrame(runs)
    missed = (summary["variant"] == "none") & (summary["framework"] == "keras") & (summary["seed"] == 2) \
        & (summary["sweep_value"] == 3)
    summary.loc[missed, "epochs_to_target"] = np.nan  # never reached the target: counts as 10 + 1
    lost = (summary["variant"] == "bn_after") & (summary["framework"] == "torch") & (summary["seed"] == 3) \
        & (summary["sweep_value"] == 2)
    base = summary.iloc[:2].assign(sweep=sweeps.BASE, sweep_value=np.nan)  # not crossed: ignored
    return pd.concat([base, summary[~lost]], ignore_index=True)


def test_variance_table_one_row_per_cell_and_metric():
    table = variance.variance_table(synthetic_summary())
    assert list(table.columns) == list(variance.VARIANCE_COLUMNS)
    assert len(table) == 4 * 2  # 2 variants x 2 frameworks x the 2 metrics present
    assert list(table["metric"].unique()) == ["test_accuracy", "epochs_to_target"]
    assert list(table[["variant", "framework"]].drop_duplicates().itertuples(index=False, name=None)) == [
        ("none", "keras"), ("none", "torch"), ("bn_after", "keras"), ("bn_after", "torch")]  # input order
    incomplete = table[(table["variant"] == "bn_after") & (table["framework"] == "torch")]
    assert (incomplete["n_init"] == 2).all() and (incomplete["n_order"] == 3).all()
    assert (incomplete["n_runs"] == 8).all()
    complete = table.drop(incomplete.index)
    assert (complete["n_init"] == 3).all() and (complete["n_order"] == 3).all() and (complete["n_runs"] == 9).all()
    accuracy = table[table["metric"] == "test_accuracy"]
    shares = accuracy[["init_share", "order_share", "interaction_share"]].sum(axis=1)
    assert shares.to_numpy() == pytest.approx(np.ones(4))
    assert (accuracy["init_share_low"] <= accuracy["init_share"]).all()
    assert (accuracy["init_share"] <= accuracy["init_share_high"]).all()


def test_variance_table_counts_a_missed_target_as_one_epoch_past_the_end():
    table = variance.variance_table(synthetic_summary())
    row = table[(table["variant"] == "none") & (table["framework"] == "keras")
                & (table["metric"] == "epochs_to_target")].iloc[0]
    assert row["n_init"] == 3 and row["n_order"] == 3
    assert row["mean"] == pytest.approx((8 * 5 + 11) / 9)
    assert row["total_variance"] > 0  # the miss is a value, not a gap
    constant = table[(table["variant"] == "none") & (table["framework"] == "torch")
                     & (table["metric"] == "epochs_to_target")].iloc[0]
    assert constant["total_variance"] == 0 and np.isnan(constant["init_share"])


def test_variance_table_drops_an_order_seed_without_values_and_keeps_small_cells():
    runs = pd.DataFrame(crossed_runs("none", "keras") + crossed_runs("bn_after", "keras", n_init=1))
    runs["test_loss"] = np.where(runs["sweep_value"] == 2, np.inf, 0.3 + 0.01 * runs["seed"] + 0.001 * runs.index)
    table = variance.variance_table(runs).set_index(["variant", "metric"])
    loss = table.loc[("none", "test_loss")]
    assert loss["n_init"] == 3 and loss["n_order"] == 2 and np.isfinite(loss["init_share"])
    small = table.loc[("bn_after", "test_accuracy")]
    assert small["n_init"] == 1 and small["n_order"] == 3 and small["n_runs"] == 3
    assert np.isnan(small["total_variance"]) and np.isnan(small["init_share_low"])


def test_variance_table_rejects_two_runs_in_one_cell():
    runs = pd.DataFrame(crossed_runs("none", "keras"))
    with pytest.raises(ValueError, match="more than one"):
        variance.variance_table(pd.concat([runs, runs.iloc[:1]]))


def test_variance_table_without_crossed_runs_has_the_columns_only():
    base = pd.DataFrame(crossed_runs("none", "keras")).assign(sweep=sweeps.BASE)
    for summary in (base, base.iloc[:0]):
        table = variance.variance_table(summary)
        assert table.empty and list(table.columns) == list(variance.VARIANCE_COLUMNS)
