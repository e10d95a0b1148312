"""The self-contained HTML report: figures embedded as data URIs, tables of means with 95 % CIs."""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pandas as pd

from bnbench import PACKAGE_ROOT, stats

CAPTIONS = {
    "val_accuracy": "Validation accuracy per epoch: mean over seeds with a 95 % bootstrap CI band, "
                    "one line per variant, one panel per framework.",
    "test_accuracy": "Final test accuracy per variant and framework: one dot per seed, mean and 95 % CI.",
    "epochs_to_target": "Epochs until validation accuracy first reaches the target; runs that never "
                        "reach it sit above the dashed line.",
}


def _data_uri(path: Path) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _fmt(mean: float, low: float, high: float, digits: int) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def means_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per variant x framework: test accuracy and epochs to target with 95 % CIs."""
    keys = ["variant", "framework"]
    acc = stats.summarise(summary, keys, "test_accuracy")
    ett = stats.summarise(summary, keys, "epochs_to_target")
    secs = summary.groupby(keys, sort=False)["total_train_seconds"].mean().rename("seconds").reset_index()
    diverged = summary.groupby(keys, sort=False)["diverged"].sum().rename("diverged").reset_index()
    table = acc.merge(ett, on=keys, suffixes=("_acc", "_ett")).merge(secs, on=keys).merge(diverged, on=keys)
    return pd.DataFrame({
        "variant": table["variant"], "framework": table["framework"], "seeds": table["n_acc"],
        "test accuracy, mean [95 % CI]": [_fmt(m, lo, hi, 3) for m, lo, hi in
                                          zip(table.mean_acc, table.ci_low_acc, table.ci_high_acc)],
        "epochs to target, mean [95 % CI] of runs that reached it":
            [_fmt(m, lo, hi, 1) for m, lo, hi in zip(table.mean_ett, table.ci_low_ett, table.ci_high_ett)],
        "reached target": [f"{n - miss}/{n}" for n, miss in zip(table.n_ett, table.n_missing_ett)],
        "train seconds (mean)": table["seconds"].map(lambda s: f"{s:.1f}"),
        "diverged": table["diverged"].astype(int),
    })


def _sections(summary: pd.DataFrame, figures: list[Path]) -> list[dict]:
    sections = []
    for (dataset, arch), group in summary.groupby(["dataset", "arch"], sort=False):
        figs = [{"name": f.stem, "uri": _data_uri(f), "caption": CAPTIONS.get(f.stem, f.stem)}
                for f in figures if f.parent.name == arch and f.parent.parent.name == dataset]
        target = group["target_accuracy"].iloc[0]
        sections.append({"dataset": dataset, "arch": arch, "target": target, "figures": figs,
                         "table": means_table(group).to_html(index=False, border=0, classes="means")})
    return sections


def _versions(summary: pd.DataFrame) -> dict:
    cols = [c for c in summary.columns if c.startswith("versions.")]
    return {c.removeprefix("versions."): ", ".join(sorted(summary[c].dropna().astype(str).unique()))
            for c in cols}


def write_report(summary_path, figure_paths, config_json: str, out) -> None:
    summary = pd.read_csv(summary_path)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(PACKAGE_ROOT / "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))
    html = env.get_template("report.html.j2").render(
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        n_runs=len(summary), sections=_sections(summary, [Path(f) for f in figure_paths]),
        versions=_versions(summary), config=json.dumps(json.loads(config_json), indent=2),
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
