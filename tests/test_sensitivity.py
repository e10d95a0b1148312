"""Sensitivity and stability tables from a summary with known values (no training)."""

import math

import numpy as np
import pandas as pd
import pytest

from bnbench.analysis import claims, sensitivity

BASE = {"learning_rate": 0.01, "batch_size": 32, "init_scale": 1.0, "dropout": 0.0}


def run(variant, seed, sweep="base", value=None, test=0.8, train=0.8, reached=5.0, diverged=False, framework="keras"):
    settings = dict(BASE, **({sweep: value} if sweep != "base" else {}))
    return {"dataset": "circles", "arch": "mlp", "variant": variant, "framework": framework, "sweep": sweep,
            "sweep_value": value if sweep != "base" else np.nan, "seed": seed, "test_accuracy": test,
            "train_accuracy": train, "best_val_accuracy": test, "train_test_gap": train - test,
            "epochs_to_target": reached, "diverged": diverged, "reached_target": not math.isnan(reached),
            "chance_accuracy": 0.5, "run.epochs": 10, "run.optimizer.learning_rate": settings["learning_rate"],
            "run.batch_size": settings["batch_size"], "run.init_scale": settings["init_scale"],
            "run.dropout": settings["dropout"]}


@pytest.fixture
def summary():
    rows = []
    for seed in (1, 2, 3):
        for variant, stable_up_to in (("none", 0.1), ("bn_after", 1.0)):
            rows.append(run(variant, seed))  # base: lr 0.01 reaches
            for lr in (0.1, 1.0):
                ok = lr <= stable_up_to if seed != 3 else lr <= 0.01  # seed 3: only the base is stable
                rows.append(run(variant, seed, "learning_rate", lr, reached=5.0 if ok else np.nan,
                                diverged=not ok and variant == "bn_after", train=0.8 if ok else 0.5))
            # init scales 0.1 and 10 around the base 1: means 0.6 / 0.8 (base) / 0.7 for none
            spread = {"none": (0.6, 0.7), "bn_after": (0.78, 0.79)}[variant]
            rows.append(run(variant, seed, "init_scale", 0.1, test=spread[0] + 0.01 * seed))
            rows.append(run(variant, seed, "init_scale", 10.0, test=spread[1]))
            gain = {"none": 0.05, "bn_after": 0.0}[variant]
            rows.append(run(variant, seed, "dropout", 0.5, test=0.8 + gain))
            rows.append(run(variant, seed, "batch_size", 4, test=0.8 - {"none": 0.0, "bn_after": 0.1}[variant]))
    return pd.DataFrame(rows)


def test_each_axis_curve_holds_its_sweep_runs_and_the_base_runs(summary):
    table = sensitivity.sensitivity_table(summary)
    curve = table[(table.variant == "none") & (table.metric == "test_accuracy")]
    assert sorted(zip(curve.sweep, curve.sweep_value)) == sorted(
        [("learning_rate", 0.01), ("learning_rate", 0.1), ("learning_rate", 1.0), ("init_scale", 0.1),
         ("init_scale", 1.0), ("init_scale", 10.0), ("dropout", 0.0), ("dropout", 0.5), ("batch_size", 4.0),
         ("batch_size", 32.0)])
    assert (table.n_runs == 3).all() and set(table.metric) == set(sensitivity.SENSITIVITY_METRICS)
    diverged = table[(table.variant == "bn_after") & (table.sweep_value == 1.0) & (table.sweep == "learning_rate")]
    assert (diverged.n_diverged == 1).all()  # seed 3 diverged there, and is counted, not dropped
    init = table[(table.variant == "none") & (table.sweep == "init_scale") & (table.sweep_value == 0.1)
                 & (table.metric == "test_accuracy")].iloc[0]
    assert init["mean"] == pytest.approx(0.62) and init.mean_ci_low < 0.62 < init.mean_ci_high


def test_stability_metrics_per_seed(summary):
    seeds = sensitivity.per_seed(summary).set_index(["variant", "seed"])
    assert seeds.loc[("none", 1), "max_stable_learning_rate"] == 0.1
    assert seeds.loc[("bn_after", 1), "max_stable_learning_rate"] == 1.0
    assert seeds.loc[("bn_after", 3), "max_stable_learning_rate"] == 0.01
    assert seeds.loc[("none", 3), "unstable_fraction"] == pytest.approx(2 / 3)  # collapsed to chance, finite
    assert seeds.loc[("bn_after", 1), "unstable_fraction"] == 0
    # init_scale_spread: its mean over seeds is max - min of the mean accuracies over init scales
    means = {0.1: 0.62, 1.0: 0.8, 10.0: 0.7}
    assert seeds.xs("none", level="variant")["init_scale_spread"].mean() == pytest.approx(0.8 - 0.62)
    assert max(means.values()) - min(means.values()) == pytest.approx(0.18)
    assert seeds.xs("none", level="variant")["dropout_gain"].to_numpy() == pytest.approx([0.05] * 3)
    assert seeds.loc[("bn_after", 2), "small_batch_drop"] == pytest.approx(0.1)
    assert seeds.loc[("none", 2), "small_batch_drop"] == pytest.approx(0.0)


def test_stability_table_geometric_mean_and_intervals(summary):
    table = sensitivity.stability_table(summary).set_index(["variant", "framework"])
    row = table.loc[("bn_after", "keras")]
    assert row.max_stable_learning_rate == pytest.approx(10 ** np.mean(np.log10([1.0, 1.0, 0.01])))
    assert row.max_stable_learning_rate_ci_low < row.max_stable_learning_rate < row.max_stable_learning_rate_ci_high
    assert row.max_stable_learning_rate_n == 3 and row.small_batch_drop == pytest.approx(0.1)
    assert table.loc[("none", "keras"), "init_scale_spread"] == pytest.approx(0.18)


def test_a_seed_with_no_stable_learning_rate_counts_one_grid_step_below(summary):
    unstable = summary.copy()
    unstable.loc[unstable.sweep.isin(["base", "learning_rate"]), "epochs_to_target"] = np.nan
    seeds = sensitivity.per_seed(unstable)
    assert seeds.max_stable_learning_rate.to_numpy() == pytest.approx([0.001] * 6)  # grid 0.01, 0.1, 1: a step is x10


def test_unswept_axes_give_no_stability_value(summary):
    only_lr = summary[summary.sweep.isin(["base", "learning_rate"])]
    table = sensitivity.stability_table(only_lr)
    assert table.init_scale_spread.isna().all() and (table.init_scale_spread_n == 0).all()
    assert table.max_stable_learning_rate.notna().all()
    assert sensitivity.sensitivity_table(summary[summary.sweep == "base"]).empty


def test_stability_claims_pair_seeds_and_say_what_bn_bought(summary):
    both = pd.concat([summary, summary.assign(framework="torch")], ignore_index=True)
    listed = [{"id": f"c_{metric}", "source": "s", "quote": "q", "claim": metric, "dataset": "circles",
               "arch": "mlp", "variant": ["bn_after", "bn_before"], "against": "none", "metric": metric,
               "kind": "stability", "expect": ["better"]} for metric in sensitivity.STABILITY_METRICS]
    table = claims.evaluate(both, listed, {"init_scale_spread": 0.01}, min_pairs=2)
    lr = table[(table.id == "c_max_stable_learning_rate") & (table.variant == "bn_after")].iloc[0]
    # per seed log10(BN / none): 1, 1, 0 -> mean 2/3
    assert lr.n_pairs == 3 and lr.measured == pytest.approx(2 / 3)
    spread = table[(table.id == "c_init_scale_spread") & (table.variant == "bn_after")].iloc[0]
    assert spread.measured < 0  # BN's accuracy varies less over init scales (lower is better): measured as BN - none
    assert set(table[table.variant == "bn_before"].verdict) == {"not run"}
    assert set(table.framework) == {"keras", "torch"} and {"variant", "against"} <= set(table.columns)
