"""Adaptive seeding: the claims table (bnbench.analysis.claims) as a group-sequential test, and the plan of
each look (which runs it used, which it adds next).

With `adaptive: {max_seeds, batch}` the workflow looks at the claims after the configured seeds, adds `batch`
seeds to every cell behind a claim row that is still inconclusive, looks again, and so on until every row is
decided or no cell may grow (max_seeds). Testing at a fixed 5 % at every look and stopping once a test passes
would raise the chance of a false verdict well above 5 %, so alpha is spent over the looks:
  * Rows whose verdict is a rejection (kinds compare, stability, range: better / worse / equivalent, inside or
    outside the range) share alpha_s = 5 % x their share of the table's rows that have runs behind them. Look k of K (fixed in advance by
    the config: the configured seeds, then one look per batch) tests the rows still open with Holm's procedure
    at a_k = f(k / K) - f((k - 1) / K), where f(t) = 2 - 2 Phi(z(1 - alpha_s / 2) / sqrt(t)) is the
    O'Brien-Fleming-type spending function of Lan & DeMets (1983) (f(1) = alpha_s: little is spent early,
    when a handful of seeds says little). A row decided at a look keeps that verdict. Within a look Holm keeps
    the chance of a false verdict at a_k; over the looks the union bound keeps it at sum a_k <= alpha_s,
    whenever the data stop the procedure (conservative: it ignores that the looks' statistics are correlated).
    When no cell may grow any more, the looks still to come would test the same data at their levels; one
    test at the largest of them (the last: the increments grow) rejects exactly what they would, so the open
    rows get it at once. A true null leaves the open rows only by a false verdict, so before the first one
    every true null is open, and Holm's argument bounds each look's chance of a first false verdict by a_k.
  * single_run rows hold when they are *not* rejected, so a small early level would let them hold too easily:
    they are tested once, with Holm at the rest of the 5 %, on the configured seeds' runs (data fixed in
    advance, so when the looks stop cannot sway them).
So the whole table keeps Holm's 5 % family-wise error rate of the fixed-seed verdicts. The seeds the looks
add serve these verdicts only: the other tables and figures stay on the configured seeds, whose number was
not chosen by looking at the data.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bnbench import sweeps
from bnbench.analysis import claims as claim_checks

SEQUENTIAL_KINDS = ("compare", "stability", "range")
LOOK_COLUMNS = ["look", "alpha", "decided"]


def spent(t: float, alpha: float) -> float:
    """The O'Brien-Fleming-type spending function: alpha spent by information fraction t (f(1) = alpha)."""
    from scipy.stats import norm

    return 0.0 if t <= 0 else float(2 - 2 * norm.cdf(norm.ppf(1 - alpha / 2) / math.sqrt(t)))


def look_levels(looks: int, alpha: float) -> list[float]:
    """The level of each of `looks` equally spaced looks; they sum to alpha."""
    return [spent(k / looks, alpha) - spent((k - 1) / looks, alpha) for k in range(1, looks + 1)]


def split_alpha(summary: pd.DataFrame, claim_list: list[dict], alpha: float = claim_checks.ALPHA) -> tuple[float, float]:
    """(alpha of the sequential rows, alpha of the single_run rows), in proportion to their numbers of rows
    with runs behind them. Which rows have runs is the config's doing (the looks add runs to cells that have
    some, never new cells), so the split is fixed before any outcome is seen."""
    table = claim_checks.evaluate(summary, claim_list, family=lambda claim, key: False)  # no test: what has data
    measured = table[table["verdict"] != claim_checks.NO_DATA]
    sequential = int(measured["kind"].isin(SEQUENTIAL_KINDS).sum())
    total = max(1, len(measured))
    return alpha * sequential / total, alpha * (len(measured) - sequential) / total


def _key(row: dict) -> tuple:
    return row["id"], row["variant"], row["framework"]


def look(summary: pd.DataFrame, claim_list: list[dict], index: int, looks: int, previous: pd.DataFrame | None,
         margins: dict | None = None, min_pairs: int = 5, last: bool = False) -> pd.DataFrame:
    """The claims table after look `index` (0-based) of `looks`: rows decided at an earlier look as they were
    then (`previous`: the table of the look before), the other sequential rows tested on `summary` at this
    look's level, single_run rows untested (see `finish`). Extra columns: look (1-based, the look whose data
    the row shows), alpha (the level its family was tested at), decided. `last`: no seeds will be added, so
    the looks still to come would test the same data: one test at the largest of their levels is the same."""
    alpha_sequential, _ = split_alpha(summary, claim_list)
    levels = look_levels(looks, alpha_sequential)
    level = max(levels[index:]) if last else levels[index]
    closed = {} if previous is None else {_key(r): r for r in previous.to_dict("records") if r["decided"]}

    def open_row(claim: dict, key: tuple) -> bool:
        return claim["kind"] in SEQUENTIAL_KINDS and key not in closed

    rows = []
    for row in claim_checks.evaluate(summary, claim_list, margins, min_pairs, alpha=level, family=open_row).to_dict("records"):
        if _key(row) in closed:
            rows.append(closed[_key(row)])
            continue
        sequential = row["kind"] in SEQUENTIAL_KINDS
        decided = sequential and row["verdict"] not in (claim_checks.INCONCLUSIVE, claim_checks.NO_DATA)
        rows.append({**row, "look": index + 1 if sequential else np.nan, "alpha": level if sequential else np.nan,
                     "decided": bool(decided)})
    return pd.DataFrame(rows)


def finish(table: pd.DataFrame, summary: pd.DataFrame, claim_list: list[dict], index: int,
           margins: dict | None = None, min_pairs: int = 5) -> pd.DataFrame:
    """The last look's table: the single_run rows tested with Holm at their share of alpha on `summary`, the
    configured seeds' runs (data fixed in advance: when the looks stopped cannot sway these verdicts)."""
    _, alpha_single = split_alpha(summary, claim_list)
    if alpha_single == 0:
        return table
    single = claim_checks.evaluate(summary, claim_list, margins, min_pairs, alpha=alpha_single,
                                   family=lambda claim, key: claim["kind"] not in SEQUENTIAL_KINDS)
    tested = {_key(r): {**r, "look": index + 1, "alpha": alpha_single, "decided": r["verdict"] != claim_checks.NO_DATA}
              for r in single.to_dict("records") if r["kind"] not in SEQUENTIAL_KINDS}
    return pd.DataFrame([tested.get(_key(r), r) for r in table.to_dict("records")])


def pending_cells(table: pd.DataFrame, claim_list: list[dict]) -> list[tuple]:
    """(dataset, arch, variant, framework, with_sweeps) of every cell behind an open, inconclusive row: its
    variant and, for comparisons, the variant it is compared with; with_sweeps for stability claims (their
    values come from the sweeps)."""
    by_id = {claim["id"]: claim for claim in claim_list}
    cells = {}
    for row in table.to_dict("records"):
        if row["decided"] or row["kind"] not in SEQUENTIAL_KINDS or row["verdict"] != claim_checks.INCONCLUSIVE:
            continue
        claim = by_id[row["id"]]
        for variant in [row["variant"]] + ([claim["against"]] if claim.get("against") else []):
            key = (claim["dataset"], claim["arch"], variant, row["framework"])
            cells[key] = cells.get(key, False) or claim["kind"] == "stability"
    return [(*key, with_sweeps) for key, with_sweeps in cells.items()]


def next_runs(config: dict, cells: list[tuple], index: int) -> list[dict]:
    """The runs look `index` adds: the dataset's next batch of seeds (config.adaptive_batches) for every pending
    cell, at the base point and, for stability cells, at every sweep point their variant runs."""
    from bnbench.config import adaptive_batches, sweep_variants
    from bnbench.results import RUN_KEYS

    added = []
    for dataset, arch, variant, framework, with_sweeps in cells:
        if dataset not in config["datasets"] or index >= len(batches := adaptive_batches(config, dataset)):
            continue
        points = [(sweeps.BASE, None)]
        if with_sweeps and variant in sweep_variants(config, dataset):
            points += sweeps.points(config["datasets"][dataset])
        added += [dict(zip(RUN_KEYS, (dataset, arch, variant, framework, sweep, value, seed)))
                  for sweep, value in points for seed in batches[index]]
    return added


def _records(table: pd.DataFrame) -> list[dict]:
    """Table rows as JSON-ready records (NaN and infinity as null)."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            for row in table.astype(object).to_dict("records")]


def plan(config: dict, run_dirs: list[str], claims_path, index: int, previous_path=None) -> dict:
    """Look `index` (0-based) over the runs in `run_dirs`: the claims table on them, and the runs to add next
    (none when every row is decided, no cell may grow, or this is the last look)."""
    from bnbench.config import dataset_seeds, looks
    from bnbench.results import RUN_KEYS, read_summary, summary_frame

    claim_list = claim_checks.load(claims_path)
    summaries = [read_summary(Path(folder)) for folder in run_dirs]
    runs, summary = [{key: s[key] for key in RUN_KEYS} for s in summaries], summary_frame(summaries)
    margins, min_pairs, total = config.get("equivalence_margins"), config.get("min_pairs", 5), looks(config)
    previous = None if previous_path is None else read_table(previous_path)
    table = look(summary, claim_list, index, total, previous, margins, min_pairs)
    added = [] if index + 1 >= total else next_runs(config, pending_cells(table, claim_list), index)
    final = not added
    if final and index + 1 < total:  # the open rows' cells cannot grow: their data is final
        table = look(summary, claim_list, index, total, table, margins, min_pairs, last=True)
    if final:
        configured = summary[[seed in dataset_seeds(config, name) for name, seed in zip(summary.dataset, summary.seed)]]
        table = finish(table, configured, claim_list, index, margins, min_pairs)
    return {"look": index + 1, "looks": total, "final": final, "runs": runs, "next_runs": added,
            "claims": _records(table)}


def write_plan(config: dict, run_dirs: list[str], claims_path, index: int, out, previous_path=None) -> dict:
    """The look rule: plan() written as JSON (whole or not at all)."""
    from bnbench.files import atomic_write

    found = plan(config, run_dirs, claims_path, index, previous_path)
    atomic_write(Path(out), lambda handle: json.dump(found, handle, indent=1))
    return found


def read_table(path) -> pd.DataFrame:
    """A look's claims table (its plan file's `claims`)."""
    return pd.DataFrame(json.loads(Path(path).read_text(encoding="utf-8"))["claims"])


def claims_table(path) -> pd.DataFrame:
    """claims.csv from the final look's plan: the claims table's columns, then look, alpha, decided."""
    table = read_table(path)
    return table.reindex(columns=[*claim_checks.COLUMNS, *LOOK_COLUMNS])
