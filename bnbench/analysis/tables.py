"""The stats rule: summary.csv and bn_statistics.csv in; stats.csv and comparisons.csv (base runs), claims.csv,
sensitivity.csv (per sweep point), stability.csv (stability metrics over seeds), bn_diagnostics.csv (BN's
train/inference gap) and variance.csv (variance by source, crossed runs) out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bnbench import sweeps
from bnbench.analysis import bn_gap, claims, sensitivity, sequential, stats, variance
from bnbench.files import atomic_write


def write_statistics(summary_path, claims_path, stats_path, comparisons_path, claims_out,
                     margins: dict | None = None, min_pairs: int = 5, sensitivity_path=None,
                     stability_path=None, bn_statistics_path=None, bn_diagnostics_path=None,
                     variance_path=None, sequential_path=None) -> int:
    """Write the tables; returns the number of runs they summarise. `margins`: equivalence margin per
    metric (config equivalence_margins); `min_pairs`: fewest runs or pairs a claim's verdict rests on;
    `sequential_path`: adaptive seeding's final look, whose sequential verdicts are the claims table."""
    summary = pd.read_csv(summary_path)
    base = summary[summary["sweep"] == sweeps.BASE]
    tables = {stats_path: stats.aggregate(base), comparisons_path: stats.comparisons(base),
              claims_out: sequential.claims_table(sequential_path) if sequential_path
              else claims.evaluate(summary, claims.load(claims_path), margins, min_pairs)}
    if sensitivity_path:
        tables[sensitivity_path] = sensitivity.sensitivity_table(summary)
    if stability_path:
        tables[stability_path] = sensitivity.stability_table(summary)
    if bn_diagnostics_path:
        tables[bn_diagnostics_path] = bn_gap.table(summary, pd.read_csv(bn_statistics_path))
    if variance_path:
        tables[variance_path] = variance.variance_table(summary)
    for path, table in tables.items():
        atomic_write(Path(path), lambda handle, table=table: table.to_csv(handle, index=False))
    return len(summary)
