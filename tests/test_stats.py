"""Statistics against hand-computed cases."""

import numpy as np
import pandas as pd
import pytest

from bnbench.analysis import claims, metrics, stats


def history(accuracies, seconds=1.0):
    return [{"epoch": i + 1, "val_accuracy": a, "epoch_seconds": seconds} for i, a in enumerate(accuracies)]


def test_run_metrics_hit_and_miss():
    hit = metrics.run_metrics(history([0.5, 0.7, 0.85, 0.9], seconds=2.0), target=0.8, epochs=4)
    assert hit["epochs_to_target"] == 3 and hit["seconds_to_target"] == 6.0 and hit["reached_target"]
    assert hit["val_accuracy_auc"] == pytest.approx((0.5 + 0.7 + 0.85 + 0.9) / 4)
    assert hit["best_val_accuracy"] == 0.9
    miss = metrics.run_metrics(history([0.5, 0.6]), target=0.8, epochs=4)  # stopped early too
    assert miss["epochs_to_target"] is None and miss["seconds_to_target"] is None and not miss["reached_target"]
    assert miss["val_accuracy_auc"] == pytest.approx(1.1 / 4)


def test_iqm_trims_a_quarter_each_side():
    assert stats.iqm(np.array([0, 1, 2, 3, 4, 5, 6, 100.0])) == pytest.approx(np.mean([2, 3, 4, 5]))


def test_bootstrap_ci_of_a_constant_is_the_constant_and_is_seeded():
    assert stats.bootstrap_ci(np.full(7, 0.3)) == pytest.approx((0.3, 0.3))
    x = np.random.default_rng(0).normal(size=20)
    assert stats.bootstrap_ci(x) == stats.bootstrap_ci(x)


def test_bootstrap_ci_matches_normal_theory_for_a_large_sample():
    x = np.random.default_rng(1).normal(10, 2, size=400)
    low, high = stats.bootstrap_ci(x)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert low == pytest.approx(x.mean() - half, abs=0.03) and high == pytest.approx(x.mean() + half, abs=0.03)


def test_bootstrap_ci_of_two_values():
    # Resamples of [0, 1] have means 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4: the 95 % CI is [0, 1].
    assert stats.bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)


def test_probability_of_improvement():
    assert stats.probability_of_improvement([5, 6, 7], [1, 2, 3]) == 1.0
    assert stats.probability_of_improvement([1, 2, 3], [5, 6, 7]) == 0.0
    assert stats.probability_of_improvement([2, 2], [2, 2]) == 0.5
    assert stats.probability_of_improvement([1, 3], [2]) == 0.5
    assert stats.probability_of_improvement_ci([5, 6, 7], [1, 2, 3]) == (1.0, 1.0)


def test_wilcoxon():
    assert stats.wilcoxon_p([0, 0, 0]) == 1.0
    assert stats.wilcoxon_p(np.arange(1, 11)) == pytest.approx(0.001953125)  # exact: 2 / 2**10


def runs(variant, framework, values, metric="test_accuracy", epochs=100, extra=None):
    frame = pd.DataFrame({"dataset": "circles", "arch": "mlp", "variant": variant, "framework": framework,
                          "seed": range(1, len(values) + 1), metric: values, "run.epochs": epochs,
                          "diverged": False})
    return frame.assign(**(extra or {}))


def test_never_reached_counts_as_epochs_plus_one_in_comparisons():
    a = runs("bn_after", "keras", [10, 12, None], metric="epochs_to_target")
    b = runs("none", "keras", [20, 22, 24], metric="epochs_to_target")
    result = stats.compare(a, b, "epochs_to_target")
    assert result["mean_difference"] == pytest.approx(((10 - 20) + (12 - 22) + (101 - 24)) / 3)
    assert result["p_improvement"] == pytest.approx(6 / 9)  # fewer epochs is better; 101 loses all


def test_aggregate_reports_fraction_reached_and_never_drops_runs():
    frame = runs("none", "torch", [10, None, 30, None], metric="epochs_to_target")
    row = stats.aggregate(frame, metrics=["epochs_to_target"]).iloc[0]
    assert (row.n_runs, row.n, row.fraction_reached) == (4, 2, 0.5)
    assert row["mean"] == 20 and row["median"] == 20


def test_comparisons_pair_by_seed_and_cover_frameworks():
    frame = pd.concat([runs("none", "keras", [0.80, 0.81, 0.82]), runs("bn_after", "keras", [0.85, 0.86, 0.87]),
                       runs("none", "torch", [0.80, 0.81, 0.82]), runs("bn_after", "torch", [0.85, 0.86, 0.88])])
    table = stats.comparisons(frame, metrics=["test_accuracy"])
    vs = table[table.comparison == "variant_vs_baseline"].set_index("framework")
    assert vs.loc["keras", "mean_difference"] == pytest.approx(0.05) and vs.loc["keras", "p_improvement"] == 1.0
    agreement = table[table.comparison == "keras_vs_torch"].set_index("variant")
    assert agreement.loc["none", "mean_difference"] == pytest.approx(0.0)
    assert agreement.loc["bn_after", "mean_difference"] == pytest.approx(-0.01 / 3)


@pytest.mark.parametrize("low, high, verdict", [(0.84, 0.85, claims.HOLDS), (0.80, 0.82, claims.FAILS),
                                                (0.83, 0.85, claims.INCONCLUSIVE), (np.nan, np.nan, claims.NO_DATA)])
def test_range_verdict(low, high, verdict):
    assert claims.verdict_range(low, high, (0.836, 0.856)) == verdict


@pytest.mark.parametrize("low, high, direction, verdict", [
    (-0.02, -0.01, "less", claims.HOLDS), (0.01, 0.02, "less", claims.FAILS),
    (-0.01, 0.01, "less", claims.INCONCLUSIVE), (0.01, 0.02, "greater", claims.HOLDS),
    (-0.02, -0.01, "greater", claims.FAILS)])
def test_compare_verdict(low, high, direction, verdict):
    assert claims.verdict_compare(low, high, direction) == verdict


def test_claims_table_from_runs(tmp_path):
    frame = pd.concat([runs("none", "keras", [0.846] * 5), runs("bn_before", "keras", [0.80, 0.81, 0.80, 0.81, 0.80])])
    table = claims.evaluate(frame, [
        {"id": "a", "source": "s", "claim": "c", "dataset": "circles", "arch": "mlp", "variant": "none",
         "metric": "test_accuracy", "kind": "range", "range": [0.836, 0.856]},
        {"id": "b", "source": "s", "claim": "c", "dataset": "circles", "arch": "mlp", "variant": "bn_before",
         "against": "none", "metric": "test_accuracy", "kind": "compare", "direction": "less"},
        {"id": "c", "source": "s", "claim": "c", "dataset": "fashion_mnist", "arch": "mlp3", "variant": "none",
         "metric": "test_accuracy", "kind": "range", "range": [0.85, 0.9]},
    ]).set_index("id")
    assert table.loc["a", "verdict"] == claims.HOLDS and table.loc["a", "measured"] == pytest.approx(0.846)
    assert table.loc["b", "verdict"] == claims.HOLDS and table.loc["b", "measured"] < 0
    assert table.loc["c", "verdict"] == claims.NO_DATA and table.loc["c", "n"] == 0


def test_range_claim_on_epochs_cannot_hold_when_runs_missed_the_target():
    claim = {"id": "e", "source": "s", "claim": "c", "dataset": "circles", "arch": "mlp", "variant": "none",
             "metric": "epochs_to_target", "kind": "range", "range": [1, 22]}
    all_missed = runs("none", "keras", [None, None, None], metric="epochs_to_target", epochs=3)
    assert claims.evaluate(all_missed, [claim]).iloc[0].verdict == claims.INCONCLUSIVE
    some_missed = runs("none", "keras", [10, 12, None], metric="epochs_to_target")
    assert claims.evaluate(some_missed, [claim]).iloc[0].verdict != claims.HOLDS
    late = runs("none", "keras", [30, 32, None], metric="epochs_to_target")
    assert claims.evaluate(late, [claim]).iloc[0].verdict == claims.FAILS
    all_hit = runs("none", "keras", [10, 12, 14], metric="epochs_to_target")
    assert claims.evaluate(all_hit, [claim]).iloc[0].verdict == claims.HOLDS


def test_shipped_claims_file_is_well_formed():
    from conftest import REPO

    loaded = claims.load(REPO / "workflow/claims.yaml")
    assert len(loaded) >= 8 and len({c["id"] for c in loaded}) == len(loaded)
    for claim in loaded:
        assert claim["kind"] in {"range", "compare"} and claim["metric"] in stats.METRICS
        assert ("range" in claim) if claim["kind"] == "range" else {"against", "direction"} <= set(claim)
