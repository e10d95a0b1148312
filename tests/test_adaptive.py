"""Adaptive seeding (a Snakemake checkpoint per look, alpha spent over the looks) and crossed seeds
(variance by source), on a real tiny run; the sequential procedure's error control by simulation."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from bnbench.analysis import claims as claim_checks
from bnbench.analysis import sequential
from conftest import project_copy, snakemake, write_config

# A range claim that is true by a wide margin (a mean accuracy inside [0, 1]): too few seeds for the
# first look's small level, decided once a batch of seeds is added.
RANGE_CLAIM = {"id": "none_accuracy_in_range", "source": "test", "claim": "accuracy lies in [0, 1]",
               "dataset": "circles", "arch": "mlp", "variant": "none", "metric": "test_accuracy",
               "kind": "range", "range": [0.0, 1.0]}
CONFIG = {
    "frameworks": ["torch"], "seeds": [1, 2, 3], "min_pairs": 3,
    "adaptive": {"max_seeds": 9, "batch": 2},  # looks: 3 seeds, then 5, 7, 9
    "datasets": {"circles": {"epochs": 8, "variants": ["none", "bn_after"],
                             "variance": {"variants": ["bn_after"], "init_seeds": [1, 2], "order_seeds": [1, 3]}}},
    "variants": {"none": {"placement": "none"}, "bn_after": {"placement": "after"}},
}


@pytest.fixture(scope="module")
def adaptive_run(tmp_path_factory):
    project = project_copy(tmp_path_factory.mktemp("project") / "bnbench")
    (project / "workflow/claims.yaml").write_text(yaml.safe_dump([RANGE_CLAIM]))
    workdir = tmp_path_factory.mktemp("adaptive")
    write_config(workdir, CONFIG)
    snakemake(workdir, "--cores", "2", project=project)
    return workdir


@pytest.mark.slow
def test_adaptive_seeding_adds_a_batch_through_a_checkpoint_and_stops_when_decided(adaptive_run):
    first = json.loads((adaptive_run / "results/adaptive/look1.json").read_text())
    assert first["looks"] == 4 and not first["final"]
    assert {(run["variant"], run["seed"]) for run in first["next_runs"]} == {("none", 4), ("none", 5)}
    assert first["claims"][0]["verdict"] == "inconclusive"  # 3 seeds at the first look's level
    second = json.loads((adaptive_run / "results/adaptive/look2.json").read_text())
    assert second["final"] and not second["next_runs"]
    assert not (adaptive_run / "results/adaptive/look3.json").exists()  # decided: no further look
    added = adaptive_run / "results/runs/circles/mlp/none/torch"
    assert (added / "seed4/summary.json").is_file() and (added / "seed5/summary.json").is_file()
    assert not (adaptive_run / "results/runs/circles/mlp/bn_after/torch/seed4").exists()  # no claim behind it
    assert {(r["variant"], r["seed"]) for r in second["runs"] if r["sweep"] == "base"} >= {("none", 5)}
    # the added seeds serve the verdict only: the tables keep the configured seeds
    summary = pd.read_csv(adaptive_run / "results/summary.csv")
    assert set(summary[summary.sweep == "base"].seed) == {1, 2, 3}
    claims = pd.read_csv(adaptive_run / "results/claims.csv")
    row = claims.iloc[0]
    assert row.verdict == "holds" and row.n == 5 and row.look == 2 and row.alpha < 0.05
    html = (adaptive_run / "reports/index.html").read_text()
    assert "Adaptive seeding." in html and "2 look(s) of at most\n4" in html


@pytest.mark.slow
def test_crossed_runs_keep_the_uncrossed_histories_and_feed_the_variance_table(adaptive_run):
    runs = adaptive_run / "results/runs/circles/mlp/bn_after/torch"
    history = lambda path: pd.read_csv(path).drop(columns=["epoch_seconds", "sweep", "sweep_value"])  # noqa: E731
    # init seed 1 with order seed 1 is the uncrossed seed-1 run, bit for bit; order seed 3 trains otherwise
    pd.testing.assert_frame_equal(history(runs / "order_seed=1/seed1/history.csv"), history(runs / "seed1/history.csv"))
    assert not history(runs / "order_seed=3/seed1/history.csv").equals(history(runs / "seed1/history.csv"))
    settings = json.loads((runs / "order_seed=3/seed2/summary.json").read_text())
    assert settings["seed"] == 2 and settings["run"]["order_seed"] == 3 and settings["sweep"] == "order_seed"
    assert "order_seed" not in json.loads((runs / "seed2/summary.json").read_text())["run"]
    variance = pd.read_csv(adaptive_run / "results/variance.csv")
    row = variance[(variance.metric == "test_accuracy")].iloc[0]
    assert (row.variant, row.framework, row.n_init, row.n_order, row.n_runs) == ("bn_after", "torch", 2, 2, 4)
    shares = variance[["init_share", "order_share", "interaction_share"]].dropna()
    assert np.allclose(shares.sum(axis=1), 1.0)
    stats = pd.read_csv(adaptive_run / "results/stats.csv")
    assert set(stats.sweep) == {"base"}  # crossed runs are not a condition of their own


def null_differences(rng, n: int) -> np.ndarray:
    return rng.normal(0.0, 1.0, n)


def test_alpha_spending_keeps_the_error_rate_where_naive_looks_inflate_it():
    """A compare row with a zero difference (both `better` and `worse` are false verdicts), stopping at the
    first look that decides it: spending keeps the rate <= 5 %, a fixed 5 % at each of 4 looks does not."""
    rng, looks, seeds, compare = np.random.default_rng(1), 4, [5, 10, 15, 20], {"kind": "compare"}
    levels = sequential.look_levels(looks, 0.05)
    assert sum(levels) == pytest.approx(0.05) and levels == sorted(levels)  # little spent early
    spent = naive = 0
    for _ in range(4000):
        values = null_differences(rng, seeds[-1])
        p = [min(claim_checks._tests(compare, values[:n], 0.0)[outcome] for outcome in ("better", "worse"))
             for n in seeds]
        spent += any(pk <= level for pk, level in zip(p, levels))
        naive += any(pk <= 0.05 for pk in p)
    assert spent / 4000 <= 0.05 + 0.01  # (binomial noise of 4000 trials: sd 0.0034)
    assert naive / 4000 > 0.08


def synthetic_summary(seeds: int, shift: float) -> pd.DataFrame:
    """Base runs of two variants on one framework: bn_after better than none by `shift` (sd 0.01)."""
    rng = np.random.default_rng(0)
    rows = [{"dataset": "circles", "arch": "mlp", "variant": variant, "framework": "torch", "sweep": "base",
             "sweep_value": np.nan, "seed": seed, "test_accuracy": 0.8 + shift * (variant == "bn_after")
             + rng.normal(0, 0.01), "run.epochs": 10} for variant in ("none", "bn_after") for seed in range(1, seeds + 1)]
    return pd.DataFrame(rows)


COMPARE = {"id": "bn_helps", "source": "s", "claim": "c", "dataset": "circles", "arch": "mlp", "variant": "bn_after",
           "against": "none", "metric": "test_accuracy", "kind": "compare", "expect": ["better"]}
SINGLE = {"id": "one_run", "source": "s", "claim": "c", "dataset": "circles", "arch": "mlp", "variant": "none",
          "metric": "test_accuracy", "kind": "single_run", "value": 0.8}


def test_a_look_keeps_decided_rows_and_names_the_cells_to_grow():
    claim_list = [COMPARE, SINGLE]
    assert sequential.split_alpha(synthetic_summary(5, 0.0), claim_list) == pytest.approx((0.025, 0.025))
    not_run = {**COMPARE, "id": "other_dataset", "dataset": "fashion_mnist"}  # a row without runs takes no share
    assert sequential.split_alpha(synthetic_summary(5, 0.0), [*claim_list, not_run]) == pytest.approx((0.025, 0.025))
    # a small effect, 5 seeds: inconclusive at the first look; both cells of the comparison grow
    first = sequential.look(synthetic_summary(5, 0.004), claim_list, 0, 3, None)
    row = first[first.id == "bn_helps"].iloc[0]
    assert row.verdict == "inconclusive" and not row.decided and row.look == 1
    assert row.alpha == pytest.approx(sequential.look_levels(3, 0.025)[0])
    assert sorted(sequential.pending_cells(first, claim_list)) == [
        ("circles", "mlp", "bn_after", "torch", False), ("circles", "mlp", "none", "torch", False)]
    config = {"datasets": {"circles": {"sweeps": {}, "seeds": [1, 2, 3, 4, 5]}}, "seeds": [1, 2, 3, 4, 5],
              "adaptive": {"max_seeds": 9, "batch": 2}}
    added = sequential.next_runs(config, sequential.pending_cells(first, claim_list), 0)
    assert sorted((r["variant"], r["seed"]) for r in added) == [("bn_after", 6), ("bn_after", 7), ("none", 6), ("none", 7)]
    # a clear effect at the next look decides it; a later look keeps that verdict even on other data
    second = sequential.look(synthetic_summary(9, 0.05), claim_list, 1, 3, first)
    decided = second[second.id == "bn_helps"].iloc[0]
    assert decided.verdict == "holds" and decided.decided and decided.look == 2
    third = sequential.look(synthetic_summary(9, -0.05), claim_list, 2, 3, second)
    assert third[third.id == "bn_helps"].iloc[0].verdict == "holds"
    assert sequential.pending_cells(third, claim_list) == []
    # when no cell may grow before the last look, the open rows are tested at the largest level to come
    early = sequential.look(synthetic_summary(5, 0.004), claim_list, 0, 3, None, last=True)
    assert early[early.id == "bn_helps"].iloc[0].alpha == pytest.approx(sequential.look_levels(3, 0.025)[-1])
    # single-run rows are tested once, at the end, at their share of alpha
    final = sequential.finish(third, synthetic_summary(9, 0.05), claim_list, 2)
    single = final[final.id == "one_run"].iloc[0]
    assert single.alpha == pytest.approx(0.025) and single.look == 3 and single.verdict == "holds"
