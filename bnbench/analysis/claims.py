"""The tutorial-claims table: each claim of workflow/claims.yaml against our runs, per framework.

Claims are checked as what they are:
  single_run  a value (or a range) the article saw in ONE run: where it falls among our runs (its
              percentile) and whether one run of ours could give it (our 95 % prediction interval for a
              single run, mean ± t · sd · sqrt(1 + 1/n)). Our mean and its CI are shown beside it.
  range       a statement about the typical (mean) value: our mean lies inside [low, high] (two one-sided
              t-tests) or outside it (one-sided t-test beyond the nearer end).
  compare     variant against another, paired by seed, with a practical-equivalence margin m for the
              metric: `better` or `worse` (one-sided paired t-test of the mean difference against 0),
              `equivalent` (TOST: the difference lies within ±m), else `inconclusive`. The claim names the
              outcomes it expects (`expect`); it holds when the outcome is one of them.
  stability   a compare claim on a stability metric of the sweeps (bnbench.analysis.sensitivity): the
              per-seed stability values of the variant against those of `against`, paired by seed (log10
              for the max stable learning rate).
A claim's `variant` may list several variants: one row per variant (and framework). compare and single_run
claims use the base runs (the dataset's own settings); stability claims the sweeps.
Family-wise error: every claim x framework row is one test (a compare or range row's tests each at half
its level, see _tests), and Holm's step-down procedure keeps the chance of any false verdict in the table
at 5 %. A row with fewer than `min_pairs` runs (or pairs) is inconclusive. For an inconclusive row,
`seeds_needed` estimates how many seeds (pairs) would decide it at the observed effect and spread:
n = ((z(1 - alpha_row / 2) + z(0.8)) * sd / effect)^2, i.e. 80 % power of a one-sided test at half the row's
Holm level, where effect is the distance of the mean (difference) from the nearest decision boundary it
leans towards (0 for better/worse, ±m for equivalent, the range ends).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from bnbench import sweeps
from bnbench.analysis import sensitivity, stats

HOLDS, FAILS, INCONCLUSIVE, NO_DATA = "holds", "does not hold", "inconclusive", "not run"
BETTER, WORSE, EQUIVALENT = "better", "worse", "equivalent"
ALPHA = 0.05
POWER = 0.8


def load(path: str | Path) -> list[dict]:
    return yaml.safe_load(Path(path).read_text())


def _t_sf(t: float, df: int) -> float:
    from scipy import stats as sps

    return float(sps.t.sf(t, df))


def one_sided_p(values: np.ndarray, bound: float, above: bool) -> float:
    """p of the one-sided t-test that the mean of `values` lies above (or below) `bound`."""
    n, sd = values.size, values.std(ddof=1)
    if sd == 0:
        return 0.0 if (values.mean() > bound if above else values.mean() < bound) else 1.0
    t = (values.mean() - bound) / (sd / math.sqrt(n))
    return _t_sf(t if above else -t, n - 1)


def tost_p(values: np.ndarray, low: float, high: float) -> float:
    """Two one-sided tests: p that the mean lies inside (low, high)."""
    return max(one_sided_p(values, low, above=True), one_sided_p(values, high, above=False))


def prediction_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Where one more run would fall: mean ± t · sd · sqrt(1 + 1/n) (normal theory)."""
    from scipy import stats as sps

    n = values.size
    half = sps.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) * math.sqrt(1 + 1 / n)
    return float(values.mean() - half), float(values.mean() + half)


def percentile(values: np.ndarray, value: float) -> float:
    """Share of our runs below `value` (ties count half), in percent."""
    return float(100 * (np.mean(values < value) + 0.5 * np.mean(values == value)))


def seeds_needed(mean: float, sd: float, boundary: float, alpha: float) -> float:
    """Seeds for 80 % power to show `mean` is on its side of `boundary` at level alpha (normal approximation)."""
    from scipy import stats as sps

    effect = abs(mean - boundary)
    if effect == 0 or not np.isfinite(sd):
        return math.inf
    return float(math.ceil(((sps.norm.ppf(1 - alpha) + sps.norm.ppf(POWER)) * sd / effect) ** 2))


def holm(p_values: list[float], alpha: float = ALPHA) -> list[float]:
    """Holm's level for each test (alpha / (m - rank)); a test passes if p <= its level and every test with
    a smaller p passed. Returns the level per test, or 0 where an earlier test failed (step-down stop)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    levels, stopped = [0.0] * len(p_values), False
    for rank, i in enumerate(order):
        level = alpha / (len(p_values) - rank)
        if stopped or not p_values[i] <= level:
            stopped = True
            levels[i] = 0.0
        else:
            levels[i] = level
    return levels


COMPARING = ("compare", "stability")  # kinds tested as a paired difference against `against`


def _runs(summary: pd.DataFrame, claim: dict, variant: str, framework: str) -> pd.DataFrame:
    """The claim's base runs of one variant and framework."""
    return summary[(summary.dataset == claim["dataset"]) & (summary.arch == claim["arch"])
                   & (summary.variant == variant) & (summary.framework == framework)
                   & (summary.sweep == sweeps.BASE)]


def variants(claim: dict) -> list[str]:
    return claim["variant"] if isinstance(claim["variant"], list) else [claim["variant"]]


def _claimed_bounds(claim: dict) -> tuple[float, float]:
    """A range or single_run claim's [low, high] (a single value is a range of one point)."""
    return tuple(claim["range"]) if "range" in claim else (claim["value"], claim["value"])


def _tests(claim: dict, values: np.ndarray, margin: float) -> dict[str, float]:
    """The outcome -> p-value of each test the claim's verdict can rest on. A compare or range row has
    tests whose nulls can hold together (a zero difference: `better` and `worse` are both false; a
    difference on the margin or a mean on a range end: `equivalent` / `holds` and the opposite outcome),
    so each p is doubled (each test at half the row's level): the row's chance of a false verdict stays at
    its level, not twice it (Bonferroni within the row)."""
    if claim["kind"] in COMPARING:
        return _doubled({EQUIVALENT: tost_p(values, -margin, margin), BETTER: one_sided_p(values, 0.0, above=True),
                         WORSE: one_sided_p(values, 0.0, above=False)})
    low, high = _claimed_bounds(claim)
    if claim["kind"] == "range":
        return _doubled({HOLDS: tost_p(values, low, high), FAILS: min(one_sided_p(values, high, above=True),
                                                                      one_sided_p(values, low, above=False))})
    # single_run: the claimed value is atypical of one run of ours (prediction-interval t-test)
    n, sd, mean = values.size, values.std(ddof=1), values.mean()
    nearest = min(max(mean, low), high)  # the claimed value (or the point of the range) nearest our mean
    t = abs(mean - nearest) / (sd * math.sqrt(1 + 1 / n)) if sd > 0 else (math.inf if mean != nearest else 0.0)
    return {FAILS: 2 * _t_sf(t, n - 1)}


def _doubled(tests: dict[str, float]) -> dict[str, float]:
    return {outcome: min(1.0, 2 * p) for outcome, p in tests.items()}


def _boundary(claim: dict, values: np.ndarray, margin: float) -> float:
    """The decision boundary the observed mean leans towards (for seeds_needed)."""
    mean = values.mean()
    if claim["kind"] in COMPARING:
        return (math.copysign(margin, mean) if abs(mean) < margin else 0.0) if margin else 0.0
    low, high = _claimed_bounds(claim)
    return low if abs(mean - low) < abs(mean - high) else high


def _direction(metric: str) -> int:
    """+1 when higher is better, so that `better` always means better."""
    return 1 if {**stats.METRICS, **sensitivity.STABILITY_METRICS}.get(metric, True) else -1


def _measure(summary: pd.DataFrame, claim: dict, variant: str, framework: str,
             seeds: pd.DataFrame) -> tuple[dict, np.ndarray | None]:
    """The row's values to test: the metric's values, or the paired differences signed so that positive
    means the variant is better. `seeds`: the per-seed stability values (sensitivity.per_seed)."""
    runs = _runs(summary, claim, variant, framework)
    row = {"id": claim["id"], "source": claim["source"], "quote": claim.get("quote", ""),
           "quote_verbatim": claim.get("quote_verbatim", True), "claim": claim["claim"],
           "framework": framework, "variant": variant, "against": claim.get("against", ""),
           "kind": claim["kind"], "metric": claim["metric"]}
    if claim["kind"] == "stability":
        differences = sensitivity.paired_differences(seeds, claim["dataset"], claim["arch"], variant,
                                                     claim["against"], framework, claim["metric"])
        return {**row, "n": len(differences), "n_pairs": len(differences),
                "expected": f"{variant} vs {claim['against']}: {' or '.join(claim['expect'])}"}, differences
    if claim["kind"] != "compare":
        values = stats.censored(runs, claim["metric"]).to_numpy(float)  # a miss counts as epochs + 1
        expected = (f"one run gave {claim['value']}" if "value" in claim else
                    f"{'one run' if claim['kind'] == 'single_run' else 'mean'} in [{claim['range'][0]}, {claim['range'][1]}]")
        return {**row, "n": len(values), "expected": expected}, values
    against = _runs(summary, claim, claim["against"], framework)
    pairs = stats.paired(runs, against, claim["metric"])
    differences = _direction(claim["metric"]) * (pairs["value_a"] - pairs["value_b"]).to_numpy(float)
    return {**row, "n": len(runs), "n_pairs": len(differences), "expected": f"{variant} vs "
            f"{claim['against']}: {' or '.join(claim['expect'])}"}, differences


def row_key(claim: dict, variant: str, framework: str) -> tuple[str, str, str]:
    """What names one row of the claims table."""
    return claim["id"], variant, framework


def evaluate(summary: pd.DataFrame, claims: list[dict], margins: dict | None = None, min_pairs: int = 5,
             alpha: float = ALPHA, family: Callable[[dict, tuple], bool] | None = None) -> pd.DataFrame:
    """One row per claim x framework: n (runs or pairs), measured mean with its 95 % CI, the single-run
    percentile and prediction interval, the outcome and verdict after Holm's correction at `alpha`, seeds
    needed. `family(claim, row_key)`: which rows are tested (default all; the others are shown untested,
    for bnbench.analysis.sequential)."""
    margins = margins or {}
    rows, tests = [], []
    seeds = sensitivity.per_seed(summary)
    for claim, variant in ((claim, variant) for claim in claims for variant in variants(claim)):
        for framework in sorted(summary.framework.unique()):
            row, values = _measure(summary, claim, variant, framework, seeds)
            values = values[np.isfinite(values)] if values is not None else np.array([])
            # shown as measured: a compare claim's difference variant - against, whatever the metric's direction
            sign = _direction(claim["metric"]) if claim["kind"] in COMPARING else 1
            low, high = sorted(sign * np.array(stats.mean_ci(values)))
            row.update(measured=sign * values.mean() if values.size else np.nan, ci_low=low, ci_high=high,
                       margin=claim.get("margin", margins.get(claim["metric"], 0.0)) if claim["kind"] in COMPARING
                       else np.nan)
            if claim["kind"] == "single_run" and values.size >= 2:
                if "value" in claim:  # (a claimed range has no one percentile)
                    row["percentile"] = percentile(values, claim["value"])
                row["prediction_low"], row["prediction_high"] = prediction_interval(values)
            enough = values.size >= max(min_pairs, 2) and (family is None or family(claim, row_key(claim, variant, framework)))
            tests.append(_tests(claim, values, row["margin"]) if enough else {})
            row["verdict"] = NO_DATA if values.size == 0 else INCONCLUSIVE
            rows.append((claim, row, values))
    tested = [i for i, t in enumerate(tests) if t]  # the family: rows with enough runs to test
    levels = [0.0] * len(tests)
    for i, level in zip(tested, holm([min(tests[i].values()) for i in tested], alpha)):
        levels[i] = level
    table = []
    for (claim, row, values), test, level in zip(rows, tests, levels):
        row["p_value"] = min(test.values()) if test else np.nan
        row["holm_level"] = level
        outcome = next((name for name, p in test.items() if level and p <= level), None)  # equivalence first
        if claim["kind"] in COMPARING:
            row["outcome"] = outcome or (INCONCLUSIVE if values.size else NO_DATA)
            if outcome:
                row["verdict"] = HOLDS if outcome in claim["expect"] else FAILS
        elif claim["kind"] == "single_run" and test:
            row["verdict"] = FAILS if outcome else HOLDS  # not atypical: one run of ours could give it
        elif outcome:
            row["verdict"] = outcome
        if row["verdict"] == INCONCLUSIVE and values.size >= 2:
            strictest = alpha / max(1, len(tested))  # the strictest Holm level: a conservative estimate
            strictest /= 2 if claim["kind"] != "single_run" else 1  # (each of the row's tests at half of it)
            row["seeds_needed"] = max(min_pairs, seeds_needed(values.mean(), values.std(ddof=1),
                                                              _boundary(claim, values, row["margin"]), strictest))
        table.append(row)
    return pd.DataFrame(table).reindex(columns=COLUMNS)


COLUMNS = ["id", "framework", "variant", "against", "kind", "metric", "claim", "source", "quote", "quote_verbatim",
           "expected", "n", "n_pairs", "measured", "ci_low", "ci_high", "percentile", "prediction_low",
           "prediction_high", "margin", "outcome", "p_value", "holm_level", "verdict", "seeds_needed"]
