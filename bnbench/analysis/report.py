"""The self-contained HTML report: figures embedded as data URIs, claims, tables with 95 % CIs, provenance."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pandas as pd

from bnbench.analysis import stats
from bnbench.analysis.plots import FIGURES
from bnbench.files import atomic_write

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _data_uri(path: Path) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _fmt(mean: float, low: float, high: float, digits: int) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, classes="table", na_rep="–")


def means_table(stats_table: pd.DataFrame) -> pd.DataFrame:
    """One row per variant x framework: test accuracy and epochs to target with 95 % CIs."""
    wide = stats_table.set_index(["variant", "framework", "metric"])
    rows = []
    for variant, framework in dict.fromkeys(zip(stats_table.variant, stats_table.framework)):
        acc, ett = wide.loc[(variant, framework, "test_accuracy")], wide.loc[(variant, framework, "epochs_to_target")]
        secs = wide.loc[(variant, framework, "seconds_to_target")]
        rows.append({"variant": variant, "framework": framework, "seeds": int(acc.n_runs),
                     "test accuracy, mean [95 % CI]": _fmt(acc["mean"], acc.mean_ci_low, acc.mean_ci_high, 3),
                     "test accuracy, IQM": f"{acc.iqm:.3f}",
                     "reached target": f"{int(round(ett.fraction_reached * ett.n_runs))}/{int(ett.n_runs)}",
                     "epochs to target, mean [95 % CI] of runs that reached it":
                         _fmt(ett["mean"], ett.mean_ci_low, ett.mean_ci_high, 1),
                     "seconds to target, median": "–" if pd.isna(secs["median"]) else f"{secs['median']:.1f}",
                     "diverged": int(acc.n_diverged)})
    return pd.DataFrame(rows)


def diverged_table(summary: pd.DataFrame) -> str:
    """The runs that diverged, with the epoch training stopped at ("" when none did)."""
    runs = summary[summary["diverged"].astype(bool)]
    if runs.empty:
        return ""
    columns = ["dataset", "arch", "variant", "framework", "seed", "diverged_epoch", "test_accuracy"]
    table = runs[columns].rename(columns={"diverged_epoch": "stopped at epoch",
                                          "test_accuracy": "test accuracy at the stop"})
    return _html(table.astype({"stopped at epoch": int}))


def comparisons_table(comparisons: pd.DataFrame, kind: str) -> pd.DataFrame:
    frame = comparisons[(comparisons.comparison == kind)
                        & comparisons.metric.isin(["test_accuracy", "epochs_to_target"])]
    digits = frame.metric.map({"test_accuracy": 3, "epochs_to_target": 1})
    return pd.DataFrame({
        "variant": frame.variant, "framework": frame.framework if kind != "keras_vs_torch" else "keras − torch",
        "metric": frame.metric.str.replace("_", " "), "pairs": frame.n_pairs,
        "mean difference [95 % CI]": [_fmt(m, lo, hi, d) for m, lo, hi, d in zip(
            frame.mean_difference, frame.difference_ci_low, frame.difference_ci_high, digits)],
        "P(better) [95 % CI]": [_fmt(m, lo, hi, 2) for m, lo, hi in zip(
            frame.p_improvement, frame.p_improvement_ci_low, frame.p_improvement_ci_high)],
        "Wilcoxon p": frame.wilcoxon_p.map(lambda p: "–" if pd.isna(p) else f"{p:.3g}"),
    })


def headline(stats_table: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Per dataset x arch x framework: the most accurate and the fastest-converging variant."""
    lines = []
    for (dataset, arch, framework), group in stats_table.groupby(["dataset", "arch", "framework"], sort=False):
        acc = group[group.metric == "test_accuracy"].sort_values("mean", ascending=False).iloc[0]
        runs = summary[(summary.dataset == dataset) & (summary.arch == arch) & (summary.framework == framework)]
        line = (f"{dataset} · {arch} · {framework}: most accurate <b>{acc.variant}</b> "
                f"(test accuracy {_fmt(acc['mean'], acc.mean_ci_low, acc.mean_ci_high, 3)}); ")
        if not runs["reached_target"].any():
            lines.append(line + "no run reached the target accuracy")
            continue
        reaching = runs[runs.variant.isin(runs.loc[runs.reached_target, "variant"])]
        speed = (reaching.assign(epochs=stats.censored(reaching, "epochs_to_target"))
                 .groupby("variant")["epochs"].agg(["mean", list]).sort_values("mean").iloc[0])
        low, high = stats.mean_ci(speed["list"])
        lines.append(line + f"fastest to target <b>{speed.name}</b> ({_fmt(speed['mean'], low, high, 1)} "
                     f"epochs, misses counted as epochs + 1)")
    return lines


def claims_table(claims: pd.DataFrame) -> list[dict]:
    return [{**row, "value": _fmt(row["measured"], row["ci_low"], row["ci_high"], 3)}
            for row in claims.to_dict("records")]


# summary.csv's provenance columns, as the report names them (singular, plural).
PROVENANCE = {"provenance.host": ("host", "hosts"), "provenance.cpu": ("CPU", "CPUs"),
              "provenance.device": ("device", "devices"), "provenance.commit": ("git commit", "commits"),
              "provenance.code_hash": ("training code hash", "training code hashes")}


def _tally(values: pd.Series, plural: str) -> str:
    """One value as it is; several as "3 hosts: a (10 runs), b (4 runs), c (2 runs)"."""
    counts = values.fillna("unknown").astype(str).value_counts()
    if len(counts) == 1:
        return str(counts.index[0])
    return f"{len(counts)} {plural}: " + ", ".join(f"{value} ({n} run{'s' * (n > 1)})" for value, n in counts.items())


def provenance(summary: pd.DataFrame) -> dict:
    """Where and by what code the runs were trained, from each run's own record; says so when runs differ."""
    def column(name: str) -> pd.Series:
        return summary[name] if name in summary else pd.Series(["unknown"] * len(summary))

    versions = {c.removeprefix("provenance.versions."): _tally(summary[c].dropna(), "versions")  # per framework
                for c in summary.columns if c.startswith("provenance.versions.")}
    return {"generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "trained": [(singular, _tally(column(name), plural)) for name, (singular, plural) in PROVENANCE.items()],
            "commit": _tally(column("provenance.commit"), "commits").split(":")[0],  # the header's short form
            "seeds": ", ".join(map(str, sorted(summary.seed.unique()))), "versions": versions}


def _sections(summary, stats_table, comparisons, figures: list[Path]) -> list[dict]:
    sections = []
    for (dataset, arch), group in summary.groupby(["dataset", "arch"], sort=False):
        here = lambda frame: frame[(frame.dataset == dataset) & (frame.arch == arch)]  # noqa: E731
        available = {f.stem: f for f in figures if f.parent.name == arch and f.parent.parent.name == dataset}
        categories = dict.fromkeys(figure.category for figure in FIGURES.values())
        groups = [{"name": category,
                   "figures": [{"name": name, "uri": _data_uri(available[name]), "caption": figure.caption}
                               for name, figure in FIGURES.items() if figure.category == category and name in available]}
                  for category in categories]
        sections.append({"dataset": dataset, "arch": arch, "target": group["run.target_accuracy"].iloc[0],
                         "epochs": int(group["run.epochs"].max()), "groups": groups,
                         "means": _html(means_table(here(stats_table))),
                         "versus": _html(comparisons_table(here(comparisons), "variant_vs_baseline")),
                         "agreement": _html(comparisons_table(here(comparisons), "keras_vs_torch"))})
    return sections


def read_summary(path) -> pd.DataFrame:
    """summary.csv with the provenance columns as text (a version 2.20 or an all-digit hash stays as written)."""
    text = [c for c in pd.read_csv(path, nrows=0).columns
            if c.startswith("provenance.") and c not in ("provenance.threads", "provenance.logical_cores")]
    return pd.read_csv(path, dtype=dict.fromkeys(text, str))


def write_report(summary, stats, comparisons, claims, figures, config_json: str, out) -> None:
    summary, stats_table = read_summary(summary), pd.read_csv(stats)
    comparisons, claims = pd.read_csv(comparisons), pd.read_csv(claims)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(
        n_runs=len(summary), headline=headline(stats_table, summary), claims=claims_table(claims),
        sections=_sections(summary, stats_table, comparisons, [Path(f) for f in figures]),
        provenance=provenance(summary), config=json.dumps(json.loads(config_json), indent=2),
        n_diverged=int(summary["diverged"].sum()), diverged=diverged_table(summary), n_missed=int((~summary["reached_target"]).sum()),
    )
    atomic_write(Path(out), lambda handle: handle.write(html))
