"""The self-contained HTML report: figures embedded as data URIs, claims, tables with 95 % CIs, provenance."""

from __future__ import annotations

import base64
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pandas as pd

from bnbench import PACKAGE_ROOT, stats
from bnbench.results import atomic_write

CAPTIONS = {
    "val_accuracy": "Validation accuracy per epoch: mean over seeds with a 95 % bootstrap CI band, "
                    "one line per variant, one panel per framework.",
    "train_loss": "Training loss (first 10 000 training samples, inference mode) per epoch: mean and "
                  "95 % CI band.",
    "test_accuracy": "Final test accuracy per variant and framework: one dot per seed, mean and 95 % CI.",
    "epochs_to_target": "Epochs until validation accuracy first reaches the target; runs that never "
                        "reach it are red crosses above the dashed line.",
    "performance_profile": "Share of runs that have reached the target by each epoch (a curve that "
                           "stays below 1 means some runs never got there).",
    "improvement": "Probability that a variant beats the no-BN baseline on a random pair of runs "
                   "(0.5 = no difference), with 95 % stratified-bootstrap CIs.",
    "agreement": "Keras against PyTorch final test accuracy for the same variant and seed (same initial "
                 "weights and batches); points on the dashed line agree exactly.",
}
FIGURE_GROUPS = {"Convergence": ["val_accuracy", "train_loss", "epochs_to_target", "performance_profile"],
                 "Accuracy": ["test_accuracy", "improvement"], "Frameworks": ["agreement"]}


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
        low, high = stats.bootstrap_ci(speed["list"])
        lines.append(line + f"fastest to target <b>{speed.name}</b> ({_fmt(speed['mean'], low, high, 1)} "
                     f"epochs, misses counted as epochs + 1)")
    return lines


def claims_table(claims: pd.DataFrame) -> list[dict]:
    return [{**row, "value": _fmt(row["measured"], row["ci_low"], row["ci_high"], 3)}
            for row in claims.to_dict("records")]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"


def provenance(summary: pd.DataFrame, commit: str) -> dict:
    versions = {c.removeprefix("versions."): ", ".join(sorted(summary[c].dropna().astype(str).unique()))
                for c in summary.columns if c.startswith("versions.")}
    devices = ", ".join(sorted(summary["device"].dropna().astype(str).unique())) if "device" in summary else "cpu"
    return {"generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
            "machine": f"{platform.node()} · {platform.system()} {platform.release()}", "cpu": _cpu(),
            "device": devices, "seeds": ", ".join(map(str, sorted(summary.seed.unique()))), "versions": versions}


def _sections(summary, stats_table, comparisons, figures: list[Path]) -> list[dict]:
    sections = []
    for (dataset, arch), group in summary.groupby(["dataset", "arch"], sort=False):
        here = lambda frame: frame[(frame.dataset == dataset) & (frame.arch == arch)]  # noqa: E731
        available = {f.stem: f for f in figures if f.parent.name == arch and f.parent.parent.name == dataset}
        groups = [{"name": name, "figures": [{"name": n, "uri": _data_uri(available[n]), "caption": CAPTIONS[n]}
                                             for n in names if n in available]}
                  for name, names in FIGURE_GROUPS.items()]
        sections.append({"dataset": dataset, "arch": arch, "target": group["target_accuracy"].iloc[0],
                         "epochs": int(group["run.epochs"].max()), "groups": groups,
                         "means": _html(means_table(here(stats_table))),
                         "versus": _html(comparisons_table(here(comparisons), "variant_vs_baseline")),
                         "agreement": _html(comparisons_table(here(comparisons), "keras_vs_torch"))})
    return sections


def write_report(summary, stats, comparisons, claims, figures, config_json: str, commit: str, out) -> None:
    summary, stats_table = pd.read_csv(summary), pd.read_csv(stats)
    comparisons, claims = pd.read_csv(comparisons), pd.read_csv(claims)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(PACKAGE_ROOT / "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(
        n_runs=len(summary), headline=headline(stats_table, summary), claims=claims_table(claims),
        sections=_sections(summary, stats_table, comparisons, [Path(f) for f in figures]),
        provenance=provenance(summary, commit), config=json.dumps(json.loads(config_json), indent=2),
        n_diverged=int(summary["diverged"].sum()), diverged=diverged_table(summary), n_missed=int((~summary["reached_target"]).sum()),
    )
    atomic_write(Path(out), lambda handle: handle.write(html))
