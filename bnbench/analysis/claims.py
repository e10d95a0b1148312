"""The tutorial-claims table: each claim of workflow/claims.yaml against our runs, per framework."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bnbench.analysis import stats

HOLDS, FAILS, INCONCLUSIVE, NO_DATA = "holds", "does not hold", "inconclusive", "not run"
MISSED = 1e12  # a missed target, at its most pessimistic: later than any epoch


def _range_claim(runs: pd.DataFrame, claim: dict) -> tuple[float, float, float, str]:
    """(CI low, CI high, mean, verdict). A missed target only says "after the last epoch": the claim
    fails if even counting misses as epochs + 1 the CI is outside the range, and holds only if
    even counting them as never the CI is inside."""
    if runs.empty:
        return np.nan, np.nan, np.nan, NO_DATA
    optimistic = stats.censored(runs, claim["metric"]).to_numpy(float)
    pessimistic = np.where(np.isnan(runs[claim["metric"]].to_numpy(float)), MISSED, optimistic)
    low, high = stats.mean_ci(optimistic)
    if verdict_range(*stats.mean_ci(pessimistic), claim["range"]) == HOLDS:
        verdict = HOLDS
    else:
        verdict = FAILS if verdict_range(low, high, claim["range"]) == FAILS else INCONCLUSIVE
    return low, high, optimistic.mean(), verdict


def load(path: str | Path) -> list[dict]:
    return yaml.safe_load(Path(path).read_text())


def verdict_range(low: float, high: float, claimed: tuple[float, float]) -> str:
    """Holds when the CI lies inside the claimed range, fails when it lies wholly outside."""
    if np.isnan(low) or np.isnan(high):
        return NO_DATA
    if claimed[0] <= low and high <= claimed[1]:
        return HOLDS
    if high < claimed[0] or low > claimed[1]:
        return FAILS
    return INCONCLUSIVE


def verdict_compare(low: float, high: float, direction: str) -> str:
    """Holds when the difference CI lies on the claimed side of zero, fails on the other side."""
    if np.isnan(low) or np.isnan(high):
        return NO_DATA
    above, below = low > 0, high < 0
    if (above and direction == "greater") or (below and direction == "less"):
        return HOLDS
    if above or below:
        return FAILS
    return INCONCLUSIVE


def _runs(summary: pd.DataFrame, claim: dict, variant: str, framework: str) -> pd.DataFrame:
    return summary[(summary.dataset == claim["dataset"]) & (summary.arch == claim["arch"])
                   & (summary.variant == variant) & (summary.framework == framework)]


def evaluate(summary: pd.DataFrame, claims: list[dict]) -> pd.DataFrame:
    """One row per claim x framework: measured value, its 95 % CI and the verdict."""
    rows = []
    for claim in claims:
        for framework in sorted(summary.framework.unique()):
            runs = _runs(summary, claim, claim["variant"], framework)
            row = {"id": claim["id"], "source": claim["source"], "claim": claim["claim"], "framework": framework,
                   "n": len(runs)}
            if claim["kind"] == "range":
                low, high, mean, verdict = _range_claim(runs, claim)
                row.update(measured=mean, ci_low=low, ci_high=high, verdict=verdict,
                           expected=f"{claim['metric']} in [{claim['range'][0]}, {claim['range'][1]}]")
            else:
                against = _runs(summary, claim, claim["against"], framework)
                result = stats.compare(runs, against, claim["metric"]) if len(runs) and len(against) else {}
                low, high = result.get("difference_ci_low", np.nan), result.get("difference_ci_high", np.nan)
                sign = "<" if claim["direction"] == "less" else ">"
                row.update(measured=result.get("mean_difference", np.nan), ci_low=low, ci_high=high,
                           expected=f"{claim['metric']}: {claim['variant']} - {claim['against']} {sign} 0",
                           verdict=verdict_compare(low, high, claim["direction"]))
            rows.append(row)
    return pd.DataFrame(rows)
