"""Statistics against hand-computed cases."""

import numpy as np
import pandas as pd
import pytest

from bnbench.analysis import claims, metrics, sensitivity, stats


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


def test_target_is_reached_where_accuracy_stays_above_it():
    dips = history([0.85, 0.6, 0.82, 0.79, 0.81, 0.9])  # crosses at 1, stays above from 5
    result = metrics.run_metrics(dips, target=0.8, epochs=6)
    assert result["first_epoch_to_target"] == 1 and result["epochs_to_target"] == 5 and result["reached_target"]
    last_dip = metrics.run_metrics(history([0.85, 0.9, 0.79]), target=0.8, epochs=3)
    assert last_dip["first_epoch_to_target"] == 1 and last_dip["epochs_to_target"] is None
    assert metrics.epochs_to_target(history([0.9, 0.95]), 0.8, 2) == 1
    # a diverged run never reaches the target, even when it crossed before diverging
    crossed = metrics.run_metrics(history([0.85, 0.9, float("nan")]), target=0.8, epochs=3, diverged=True)
    assert crossed["first_epoch_to_target"] == 1 and crossed["epochs_to_target"] is None
    assert not crossed["reached_target"] and crossed["seconds_to_target"] is None


def test_seconds_to_target_leave_out_the_first_epochs_warm_up():
    runs = [{"epoch": i + 1, "val_accuracy": a, "epoch_seconds": s}
            for i, (a, s) in enumerate(zip([0.5, 0.9, 0.9, 0.9], [5.0, 1.0, 1.2, 0.8]))]
    result = metrics.run_metrics(runs, target=0.8, epochs=4)
    assert result["warmup_seconds"] == pytest.approx(4.0)  # 5 s - median(1.0, 1.2, 0.8)
    assert result["epochs_to_target"] == 2 and result["seconds_to_target"] == pytest.approx(5.0 + 1.0 - 4.0)
    assert metrics.warmup_seconds(runs[:1]) is None


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
                          "sweep": "base", "sweep_value": np.nan, "seed": range(1, len(values) + 1), metric: values,
                          "run.epochs": epochs, "diverged": False})
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


CLAIM = {"id": "x", "source": "s", "claim": "c", "dataset": "circles", "arch": "mlp", "variant": "none"}


def test_one_sided_and_tost_p_values_match_scipy():
    from scipy import stats as sps

    values = np.array([0.004, 0.012, -0.003, 0.008, 0.006, 0.001])
    assert claims.one_sided_p(values, 0.0, above=True) == pytest.approx(
        sps.ttest_1samp(values, 0.0, alternative="greater").pvalue, rel=1e-10)
    upper = sps.ttest_1samp(values, 0.01, alternative="less").pvalue
    lower = sps.ttest_1samp(values, -0.01, alternative="greater").pvalue
    assert claims.tost_p(values, -0.01, 0.01) == pytest.approx(max(upper, lower), rel=1e-10)


def test_holm_levels_by_hand():
    # sorted p: 0.001 <= 0.05/4 passes, 0.004 <= 0.05/3 passes, 0.03 > 0.05/2 fails, so 0.04 fails too
    assert claims.holm([0.04, 0.001, 0.03, 0.004]) == pytest.approx([0.0, 0.0125, 0.0, 0.05 / 3])
    assert claims.holm([0.03, 0.001, 0.012, 0.004]) == pytest.approx([0.05, 0.0125, 0.025, 0.05 / 3])


def test_prediction_interval_percentile_and_seeds_needed_by_hand():
    from scipy import stats as sps

    values = np.array([0.80, 0.82, 0.84, 0.86, 0.88])
    low, high = claims.prediction_interval(values)
    half = sps.t.ppf(0.975, 4) * values.std(ddof=1) * np.sqrt(1 + 1 / 5)
    assert (low, high) == pytest.approx((0.84 - half, 0.84 + half))
    assert claims.percentile(values, 0.84) == pytest.approx(50.0) and claims.percentile(values, 0.79) == 0.0
    # ((z_0.95 + z_0.8) * sd / effect)^2 = ((1.6449 + 0.8416) * 0.02 / 0.01)^2 = 24.7 -> 25
    assert claims.seeds_needed(0.01, 0.02, 0.0, 0.05) == 25
    assert claims.seeds_needed(0.0, 0.02, 0.0, 0.05) == np.inf


def test_claims_table_from_runs():
    rng = np.random.default_rng(0)
    none = 0.846 + rng.normal(0, 0.004, 8)
    frame = pd.concat([runs("none", "keras", none), runs("bn_before", "keras", none - 0.03 + rng.normal(0, 0.002, 8)),
                       runs("bn_after", "keras", none + rng.normal(0, 0.001, 8))])
    table = claims.evaluate(frame, [
        {**CLAIM, "id": "typical", "metric": "test_accuracy", "kind": "single_run", "value": 0.846},
        {**CLAIM, "id": "atypical", "metric": "test_accuracy", "kind": "single_run", "value": 0.70},
        {**CLAIM, "id": "worse", "variant": "bn_before", "against": "none", "metric": "test_accuracy",
         "kind": "compare", "expect": ["worse"]},
        {**CLAIM, "id": "wrong", "variant": "bn_before", "against": "none", "metric": "test_accuracy",
         "kind": "compare", "expect": ["equivalent", "better"]},
        {**CLAIM, "id": "same", "variant": "bn_after", "against": "none", "metric": "test_accuracy",
         "kind": "compare", "expect": ["equivalent"]},
        {**CLAIM, "id": "mean", "metric": "test_accuracy", "kind": "range", "range": [0.836, 0.856]},
        {**CLAIM, "id": "absent", "dataset": "fashion_mnist", "arch": "mlp3", "metric": "test_accuracy",
         "kind": "range", "range": [0.85, 0.9]},
    ], margins={"test_accuracy": 0.01}).set_index("id")
    assert table.loc["typical", "verdict"] == claims.HOLDS and 10 < table.loc["typical", "percentile"] < 90
    assert table.loc["typical", "prediction_low"] < 0.846 < table.loc["typical", "prediction_high"]
    assert table.loc["atypical", "verdict"] == claims.FAILS
    assert table.loc["worse", "outcome"] == claims.WORSE and table.loc["worse", "verdict"] == claims.HOLDS
    assert table.loc["worse", "n_pairs"] == 8 and table.loc["worse", "measured"] == pytest.approx(-0.03, abs=0.005)
    assert table.loc["wrong", "verdict"] == claims.FAILS
    assert table.loc["same", "outcome"] == claims.EQUIVALENT and table.loc["same", "verdict"] == claims.HOLDS
    assert table.loc["mean", "verdict"] == claims.HOLDS
    assert table.loc["absent", "verdict"] == claims.NO_DATA and table.loc["absent", "n"] == 0
    assert (table.holm_level.dropna() <= 0.05).all()


def test_too_few_pairs_or_a_small_effect_leave_a_claim_inconclusive_with_seeds_needed():
    few = pd.concat([runs("none", "keras", [0.80, 0.81, 0.82]), runs("bn_after", "keras", [0.85, 0.86, 0.87])])
    claim = {**CLAIM, "variant": "bn_after", "against": "none", "metric": "test_accuracy", "kind": "compare",
             "expect": ["better"]}
    row = claims.evaluate(few, [claim], min_pairs=5).iloc[0]
    assert row.verdict == claims.INCONCLUSIVE and row.n_pairs == 3 and row.seeds_needed >= 5
    rng = np.random.default_rng(1)
    base = 0.84 + rng.normal(0, 0.01, 6)
    close = pd.concat([runs("none", "keras", base), runs("bn_after", "keras", base + np.array([0.02, -0.015, 0.01, -0.005, 0.015, -0.001]))])
    row = claims.evaluate(close, [claim], margins={"test_accuracy": 0.01}).iloc[0]
    assert row.verdict == claims.INCONCLUSIVE and row.outcome == claims.INCONCLUSIVE and row.seeds_needed > 6


def test_range_claim_counts_a_missed_target_as_epochs_plus_one():
    claim = {**CLAIM, "metric": "epochs_to_target", "kind": "range", "range": [1, 22]}
    all_missed = runs("none", "keras", [None] * 5, metric="epochs_to_target", epochs=3)
    assert claims.evaluate(all_missed, [claim]).iloc[0].measured == 4
    late = runs("none", "keras", [30, 32, 31, 33, 30], metric="epochs_to_target")
    assert claims.evaluate(late, [claim]).iloc[0].verdict == claims.FAILS
    early = runs("none", "keras", [10, 12, 11, 13, 12], metric="epochs_to_target")
    assert claims.evaluate(early, [claim]).iloc[0].verdict == claims.HOLDS


def test_shipped_claims_file_is_well_formed():
    from conftest import REPO

    loaded = claims.load(REPO / "workflow/claims.yaml")
    assert len(loaded) >= 15 and len({c["id"] for c in loaded}) == len(loaded)
    assert "fashion_mlp_high_080s" not in {c["id"] for c in loaded}  # in no source
    for claim in loaded:
        assert claim["kind"] in {"single_run", "range", "compare", "stability"}
        assert claim["metric"] in (sensitivity.STABILITY_METRICS if claim["kind"] == "stability" else stats.METRICS)
        assert claim["source"] and claim["quote"]  # every claim names the sentence it comes from
        if claim["kind"] in ("compare", "stability"):
            assert "against" in claim and set(claim["expect"]) <= {"better", "worse", "equivalent"}
        else:
            assert ("range" in claim) != ("value" in claim)


COVERAGE_REPLICATIONS = 20_000  # coverage's standard error: 0.15 points


def coverage(interval, sample, true_mean, n, rng) -> float:
    """Share of `COVERAGE_REPLICATIONS` samples of size n whose interval covers the true mean."""
    data = sample(rng, (COVERAGE_REPLICATIONS, n))
    low, high = interval(data)
    return float(np.mean((low <= true_mean) & (true_mean <= high)))


def student_t(data):
    """stats.mean_ci on every row at once (checked against the one-sample function below)."""
    from scipy import stats as sps

    n = data.shape[1]
    half = sps.t.ppf(0.975, n - 1) * data.std(axis=1, ddof=1) / np.sqrt(n)
    return data.mean(axis=1) - half, data.mean(axis=1) + half


def percentile_bootstrap(data, resamples=2000, seed=0):
    index = np.random.default_rng(seed).integers(0, data.shape[1], size=(resamples, data.shape[1]))
    means = data[:, index].mean(axis=2)
    return np.percentile(means, 2.5, axis=1), np.percentile(means, 97.5, axis=1)


def test_mean_ci_is_the_student_t_interval():
    from scipy import stats as sps

    values = np.array([0.84, 0.85, 0.83, 0.86, 0.845])
    expected = sps.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=sps.sem(values))
    assert stats.mean_ci(values) == pytest.approx(expected, rel=1e-12)
    assert student_t(values[None, :])[0][0] == pytest.approx(expected[0], rel=1e-12)
    assert np.isnan(stats.mean_ci([0.8])).all() and stats.mean_ci([0.8, 0.8]) == (0.8, 0.8)


@pytest.mark.parametrize("n", [5, 10])
def test_the_reported_interval_covers_95_percent_at_small_n(n):
    """Why the Student-t interval: within 2 points of 95 % at n = 5 and 10 on normal and skew-normal
    (alpha 4) data, where the percentile bootstrap under-covers; lognormal (sigma 0.5) reported."""
    from scipy import stats as sps

    rng = np.random.default_rng(n)
    skew, lognormal = sps.skewnorm(4), sps.lognorm(0.5)
    normal_cover = coverage(student_t, lambda r, shape: r.normal(size=shape), 0.0, n, rng)
    skew_cover = coverage(student_t, lambda r, shape: skew.rvs(size=shape, random_state=r), skew.mean(), n, rng)
    lognormal_cover = coverage(student_t, lambda r, shape: lognormal.rvs(size=shape, random_state=r),
                               lognormal.mean(), n, rng)
    bootstrap_cover = coverage(lambda d: percentile_bootstrap(d[:2000]), lambda r, shape: r.normal(size=shape),
                               0.0, n, rng)  # 2000 of the replications: the bootstrap is costlier
    print(f"n={n}: Student t covers {normal_cover:.3f} (normal), {skew_cover:.3f} (skew-normal 4), "
          f"{lognormal_cover:.3f} (lognormal 0.5); percentile bootstrap {bootstrap_cover:.3f} (normal)")
    assert abs(normal_cover - 0.95) <= 0.02 and abs(skew_cover - 0.95) <= 0.02
    assert bootstrap_cover < normal_cover - 0.02  # the interval the report used before under-covers


def test_headline_names_a_winner_only_when_it_separates_from_the_runner_up():
    from bnbench.analysis.report import headline

    def frame(bn_after):
        table = pd.concat([runs("none", "keras", [0.80, 0.81, 0.82, 0.81, 0.80]),
                           runs("bn_after", "keras", bn_after), runs("bn_before", "keras", [0.70, 0.71, 0.72, 0.70, 0.71])])
        return table.assign(reached_target=False)

    clear = headline(frame([0.85, 0.86, 0.87, 0.86, 0.85]), {"test_accuracy": 0.01})[0]
    assert "most accurate <b>bn_after</b>" in clear
    tied = headline(frame([0.80, 0.82, 0.81, 0.80, 0.815]), {"test_accuracy": 0.01})[0]
    assert "no clear winner in test accuracy: " in tied and "bn_before" not in tied.split(":")[2]
    assert {"none", "bn_after"} <= set(tied.split(": ")[2].split(" are")[0].split(", "))


def test_target_ladder_from_the_baselines_percentiles_and_sustained_epochs():
    from bnbench.analysis.plots import ladder_epochs

    assert metrics.ladder(np.linspace(0.80, 0.90, 101)) == [0.81, 0.825, 0.85, 0.875, 0.89]
    history_frame = pd.DataFrame({"variant": "none", "framework": "keras", "seed": 1, "epoch": [1, 2, 3, 4],
                                  "val_accuracy": [0.82, 0.79, 0.86, 0.88]})
    epochs = ladder_epochs(history_frame, [0.8, 0.85, 0.9], epochs=4).set_index("target")["epochs"]
    assert epochs.to_dict() == {0.8: 3, 0.85: 3, 0.9: 5}  # stays from epoch 3; 0.9 never: epochs + 1


def test_fewer_epochs_is_better_and_the_difference_is_shown_as_measured():
    frame = pd.concat([runs("none", "keras", [30, 31, 32, 33, 34], metric="epochs_to_target"),
                       runs("bn_after", "keras", [10, 12, 11, 13, 12], metric="epochs_to_target")])
    claim = {**CLAIM, "variant": "bn_after", "against": "none", "metric": "epochs_to_target", "kind": "compare",
             "expect": ["better"]}
    row = claims.evaluate(frame, [claim], margins={"epochs_to_target": 2}).iloc[0]
    assert row.outcome == claims.BETTER and row.verdict == claims.HOLDS
    assert row.measured == pytest.approx(-20.4) and row.ci_low < row.measured < row.ci_high < 0


@pytest.mark.parametrize("kind, bounds", [("compare", None), ("range", (0.0, 0.0))])
def test_a_row_whose_nulls_can_hold_together_keeps_its_level(kind, bounds):
    """A difference of exactly 0 (or a mean on a range's end): both directions would be false verdicts.
    Each of the row's tests at half its level keeps the false-verdict rate at the level; testing each at
    the full level would give about twice it."""
    rng, trials, level = np.random.default_rng(3), 4000, 0.05
    claim = {"kind": kind, **({"range": list(bounds)} if bounds else {})}
    false = undoubled = 0
    for _ in range(trials):
        values = rng.normal(0.0, 1.0, 10)
        tests = claims._tests(claim, values, margin=0.0)  # margin 0: "equivalent" / "holds" cannot be shown
        directions = {outcome: p for outcome, p in tests.items() if outcome not in (claims.EQUIVALENT, claims.HOLDS)}
        false += any(p <= level for p in directions.values())
        if kind == "compare":
            undoubled += any(p / 2 <= level for p in directions.values())
    assert false / trials <= level + 0.01  # binomial sd 0.0034
    if kind == "compare":
        assert undoubled / trials > 0.08
