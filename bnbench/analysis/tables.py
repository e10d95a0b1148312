"""The stats rule: summary.csv in; stats.csv and comparisons.csv (base runs), claims.csv, sensitivity.csv
(per sweep point) and stability.csv (stability metrics over seeds) out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bnbench import sweeps
from bnbench.analysis import claims, sensitivity, stats
from bnbench.files import atomic_write


def write_statistics(summary_path, claims_path, stats_path, comparisons_path, claims_out,
                     margins: dict | None = None, min_pairs: int = 5, sensitivity_path=None,
                     stability_path=None) -> int:
    """Write the tables; returns the number of runs they summarise. `margins`: equivalence margin per
    metric (config equivalence_margins); `min_pairs`: fewest runs or pairs a claim's verdict rests on."""
    summary = pd.read_csv(summary_path)
    base = summary[summary["sweep"] == sweeps.BASE]
    tables = {stats_path: stats.aggregate(base), comparisons_path: stats.comparisons(base),
              claims_out: claims.evaluate(summary, claims.load(claims_path), margins, min_pairs)}
    if sensitivity_path:
        tables[sensitivity_path] = sensitivity.sensitivity_table(summary)
    if stability_path:
        tables[stability_path] = sensitivity.stability_table(summary)
    for path, table in tables.items():
        atomic_write(Path(path), lambda handle, table=table: table.to_csv(handle, index=False))
    return len(summary)
