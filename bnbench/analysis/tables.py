"""The stats rule: summary.csv in; stats.csv (per group), comparisons.csv (paired) and claims.csv out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bnbench.analysis import claims, stats
from bnbench.files import atomic_write


def write_statistics(summary_path, claims_path, stats_path, comparisons_path, claims_out,
                     margins: dict | None = None, min_pairs: int = 5) -> int:
    """Write the three tables; returns the number of runs they summarise. `margins`: equivalence margin
    per metric (config equivalence_margins); `min_pairs`: fewest runs or pairs a claim's verdict rests on."""
    summary = pd.read_csv(summary_path)
    tables = {stats_path: stats.aggregate(summary), comparisons_path: stats.comparisons(summary),
              claims_out: claims.evaluate(summary, claims.load(claims_path), margins, min_pairs)}
    for path, table in tables.items():
        atomic_write(Path(path), lambda handle, table=table: table.to_csv(handle, index=False))
    return len(summary)
