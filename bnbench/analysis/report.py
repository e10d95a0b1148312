"""The self-contained HTML report: figures embedded as data URIs, claims, tables with 95 % CIs, provenance."""

from __future__ import annotations

import base64
import json
from html import escape
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from bnbench import sweeps
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
        warmup = wide.loc[(variant, framework, "warmup_seconds")]
        rows.append({"variant": variant, "framework": framework, "seeds": int(acc.n_runs),
                     "test accuracy, mean [95 % CI]": _fmt(acc["mean"], acc.mean_ci_low, acc.mean_ci_high, 3),
                     "test accuracy, IQM": f"{acc.iqm:.3f}",
                     "reached target": f"{int(round(ett.fraction_reached * ett.n_runs))}/{int(ett.n_runs)}",
                     "epochs to target, mean [95 % CI] of runs that reached it":
                         _fmt(ett["mean"], ett.mean_ci_low, ett.mean_ci_high, 1),
                     "seconds to target, median (without warm-up)":
                         "–" if pd.isna(secs["median"]) else f"{secs['median']:.1f}",
                     "first-epoch warm-up, median (s)": "–" if pd.isna(warmup["median"]) else f"{warmup['median']:.2f}",
                     "diverged": int(acc.n_diverged), "note": _cell_note(int(acc.n_runs), int(acc.n_diverged))})
    return pd.DataFrame(rows)


def _cell_note(runs: int, diverged: int) -> str:
    """Why a cell's numbers are missing or thin: every run diverged (accuracies of the stopped networks,
    no losses), or one run (no interval)."""
    if runs and diverged == runs:
        return "every run diverged: accuracies are the stopped networks'"
    return "one run: no interval" if runs == 1 else ""


def diverged_table(summary: pd.DataFrame) -> str:
    """The runs that diverged, with the epoch training stopped at ("" when none did)."""
    runs = summary[summary["diverged"].astype(bool)]
    if runs.empty:
        return ""
    keys = ["dataset", "arch", "variant", "framework", "sweep", "sweep_value"]
    runs = runs.assign(sweep_value=runs["sweep_value"].map(lambda v: "" if pd.isna(v) else sweeps.value_text(v)))
    table = runs.groupby(keys, sort=False).agg(
        runs=("seed", "size"), seeds=("seed", lambda seeds: ", ".join(map(str, sorted(seeds)))),
        stopped_at=("diverged_epoch", lambda e: ", ".join(str(int(x)) for x in e)),
        accuracy=("test_accuracy", "mean")).reset_index()
    return _html(table.rename(columns={"sweep_value": "value", "stopped_at": "stopped at epoch",
                                       "accuracy": "test accuracy at the stop (mean)"}))


def bn_bought(claims: pd.DataFrame) -> list[str]:
    """One line per stability claim: what BN bought, per framework and BN variant (measured difference with
    its 95 % CI, the outcome and the verdict)."""
    lines = []
    rows = claims[claims["kind"] == "stability"]
    for claim_id, group in rows.groupby("id", sort=False):
        parts = []
        for row in group.itertuples():
            measured = _fmt(row.measured, row.ci_low, row.ci_high, 3)
            outcome = "not run" if pd.isna(row.outcome) else row.outcome
            parts.append(f"{row.framework} {row.variant}: {measured} ({outcome}; {row.verdict})")
        lines.append(f"{group['claim'].iloc[0]} [{claim_id}, {group['metric'].iloc[0]}, "
                     f"{' / '.join(group['variant'].unique())} minus {group['against'].iloc[0]}] — " + "; ".join(parts))
    return lines


def stability_view(stability: pd.DataFrame) -> pd.DataFrame:
    """stability.csv of one dataset x arch as the report shows it: each metric as mean [95 % CI] (n seeds)."""
    from bnbench.analysis.sensitivity import STABILITY_METRICS

    rows = []
    for row in stability.to_dict("records"):
        shown = {"variant": row["variant"], "framework": row["framework"]}
        for metric in STABILITY_METRICS:
            digits = 4 if metric == "max_stable_learning_rate" else 3
            shown[metric.replace("_", " ")] = (
                "–" if pd.isna(row[metric]) else
                f"{_fmt(row[metric], row[f'{metric}_ci_low'], row[f'{metric}_ci_high'], digits)} ({int(row[f'{metric}_n'])})")
        rows.append(shown)
    return pd.DataFrame(rows)


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


def separated(leader: pd.DataFrame, other: pd.DataFrame, metric: str, margin: float) -> bool:
    """Is `leader` shown better than `other` on `metric`, paired by seed: the one-sided paired t-test
    rejects "no better" at 5 % and the difference is not within the equivalence margin (TOST)."""
    from bnbench.analysis.claims import one_sided_p, tost_p

    pairs = stats.paired(leader, other, metric)
    sign = 1 if stats.METRICS[metric] else -1
    differences = (sign * (pairs["value_a"] - pairs["value_b"])).to_numpy(float)
    differences = differences[np.isfinite(differences)]
    if differences.size < 2:
        return False
    return one_sided_p(differences, 0.0, above=True) <= 0.05 and not (
        margin > 0 and tost_p(differences, -margin, margin) <= 0.05)


def leaders(runs: pd.DataFrame, metric: str, margin: float) -> tuple[list[str], float, float, float]:
    """The variants tied for best on `metric` (the best by mean first; a variant is tied unless the best is
    shown better than it), and the best's mean with its 95 % CI."""
    values = runs.assign(value=stats.censored(runs, metric))
    means = values.groupby("variant")["value"].mean().sort_values(ascending=not stats.METRICS[metric])
    best = means.index[0]
    tied = [best] + [v for v in means.index[1:]
                     if not separated(runs[runs.variant == best], runs[runs.variant == v], metric, margin)]
    low, high = stats.mean_ci(values.loc[values.variant == best, "value"])
    return tied, means.iloc[0], low, high


def _lead(tied: list[str], title: str, quantity: str, mean: float, low: float, high: float, digits: int,
          unit: str) -> str:
    """"most accurate <b>v</b> (...)" for a separated winner, else "no clear winner in ...: the tied set"
    (HTML: the variant names escaped)."""
    tied = [escape(name) for name in tied]
    if len(tied) == 1:
        return f"{title} <b>{tied[0]}</b> ({_fmt(mean, low, high, digits)}{unit})"
    return (f"no clear winner in {quantity}: {', '.join(tied)} are not separated (best mean "
            f"{_fmt(mean, low, high, digits)}{unit})")


def headline(summary: pd.DataFrame, margins: dict | None = None) -> list[str]:
    """Per dataset x arch x framework: the most accurate and the fastest-converging variant, named only
    when it is shown better than every other (paired by seed); else the tied set. Lines of HTML, every
    value from the data escaped."""
    margins = margins or {}
    lines = []
    for (dataset, arch, framework), runs in summary.groupby(["dataset", "arch", "framework"], sort=False):
        tied, mean, low, high = leaders(runs, "test_accuracy", margins.get("test_accuracy", 0.0))
        line = (f"{escape(dataset)} · {escape(arch)} · {escape(framework)}: "
                + _lead(tied, "most accurate", "test accuracy", mean, low, high, 3, " test accuracy") + "; ")
        if not runs["reached_target"].any():
            lines.append(line + "no run reached the target accuracy")
            continue
        tied, mean, low, high = leaders(runs, "epochs_to_target", margins.get("epochs_to_target", 0.0))
        lines.append(line + _lead(tied, "fastest to target", "epochs to target", mean, low, high, 1,
                                  " epochs, misses counted as epochs + 1"))
    return lines


def _number(value, digits: int = 3) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}f}"


def claims_table(claims: pd.DataFrame) -> list[dict]:
    """The claims rows as the report shows them."""
    rows = []
    for row in claims.to_dict("records"):
        interval = f"[{_number(row['prediction_low'])}, {_number(row['prediction_high'])}]"
        single = ("–" if pd.isna(row.get("prediction_low")) else interval if pd.isna(row.get("percentile"))
                  else f"{row['percentile']:.0f}th percentile; {interval}")
        pairs = "" if pd.isna(row.get("n_pairs")) else f" ({int(row['n_pairs'])})"
        rows.append({**row, "value": _fmt(row["measured"], row["ci_low"], row["ci_high"], 3), "single_run": single,
                     "runs": f"{int(row['n'])}{pairs}", "outcome": "" if pd.isna(row.get("outcome")) else row["outcome"],
                     "look": "" if pd.isna(row.get("look", np.nan)) else str(int(row["look"])),
                     "level": "" if pd.isna(row.get("alpha", np.nan)) else f"{row['alpha']:.2g}",
                     "seeds": "" if pd.isna(row.get("seeds_needed")) else (
                         "∞" if row["seeds_needed"] == float("inf") else f"{int(row['seeds_needed'])}"),
                     "quote": "" if pd.isna(row.get("quote")) else row["quote"],
                     "quote_verbatim": row.get("quote_verbatim", True) is not False})
    return rows


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


def sanity_checks(runs: pd.DataFrame, arch: str) -> list[str]:
    """Notes on variants that train the same network as another by construction (spec.same_as_with_bias)."""
    from bnbench.training.spec import same_as_with_bias

    notes = []
    for variant, rows in runs.groupby("variant", sort=False):
        bn = {c.removeprefix("run.bn."): rows[c].iloc[0] for c in rows.columns if c.startswith("run.bn.")}
        if same_as_with_bias(arch, bn):
            notes.append(f"{variant} drops only biases that feed a BN layer directly, which BN's mean subtraction "
                         f"cancels: it trains the same network as its variant with biases, so any difference from "
                         f"it is a sanity check of the frameworks, not a finding.")
    return notes


def bn_gap_view(table: pd.DataFrame) -> pd.DataFrame:
    """bn_diagnostics.csv of one dataset x arch as the report shows it: the base runs and the batch-size
    sweep (small batches), one row per variant x framework x point x BN layer."""
    rows = table[table["sweep"].isin([sweeps.BASE, "batch_size"])]
    point = [("" if s == sweeps.BASE else f"batch size {sweeps.value_text(int(v))}")
             for s, v in zip(rows["sweep"], rows["sweep_value"])]
    return pd.DataFrame({
        "variant": rows["variant"], "framework": rows["framework"], "point": point, "runs": rows["n_runs"],
        "test accuracy (moving)": rows["test_accuracy"].map(_number),
        "test accuracy (population)": rows["population_test_accuracy"].map(_number),
        "gain [95 % CI]": [_fmt(m, lo, hi, 3) for m, lo, hi in zip(
            rows["population_gain"], rows["population_gain_ci_low"], rows["population_gain_ci_high"])],
        "layer": rows["layer"].map(lambda v: "–" if pd.isna(v) else str(int(v))),
        "last batch: mean shift": rows["last_batch_mean_gap"].map(_number),
        "last batch: |log std ratio|": rows["last_batch_log_std_ratio"].map(_number),
        "training set: mean shift": rows["population_mean_gap"].map(_number),
        "training set: |log std ratio|": rows["population_log_std_ratio"].map(_number)})


def variance_view(table: pd.DataFrame) -> pd.DataFrame:
    """variance.csv of one dataset x arch as the report shows it (test accuracy and epochs to target)."""
    rows = table[table["metric"].isin(["test_accuracy", "epochs_to_target", "population_test_accuracy"])
                 & (table["n_init"] > 0)]  # (population accuracy: BN variants only)
    shares = {"initialization": "init_share", "data order": "order_share", "interaction": "interaction_share"}
    return pd.DataFrame({
        "variant": rows["variant"], "framework": rows["framework"], "metric": rows["metric"].str.replace("_", " "),
        "seeds (init x order)": [f"{int(i)} x {int(o)}" for i, o in zip(rows["n_init"], rows["n_order"])],
        "total variance": rows["total_variance"].map(lambda v: "–" if pd.isna(v) else f"{v:.3g}"),
        **{label: [_fmt(m, lo, hi, 2) for m, lo, hi in zip(rows[c], rows[f"{c}_low"], rows[f"{c}_high"])]
           for label, c in shares.items()}})


def _sections(summary, stats_table, comparisons, figures: list[Path], stability: pd.DataFrame,
              bn_gap: pd.DataFrame, variance: pd.DataFrame) -> list[dict]:
    """One section per dataset x arch (`summary`: its base runs)."""
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
                         "notes": sanity_checks(group, arch),
                         "means": _html(means_table(here(stats_table))),
                         "versus": _html(comparisons_table(here(comparisons), "variant_vs_baseline")),
                         "agreement": _html(comparisons_table(here(comparisons), "keras_vs_torch")),
                         "stability": _html(stability_view(here(stability))) if len(here(stability)) else "",
                         "bn_gap": _html(bn_gap_view(here(bn_gap))) if len(here(bn_gap)) else "",
                         "variance": _html(variance_view(here(variance))) if len(here(variance)) else ""})
    return sections


def read_summary(path) -> pd.DataFrame:
    """summary.csv with the provenance columns as text (a version 2.20 or an all-digit hash stays as written)."""
    text = [c for c in pd.read_csv(path, nrows=0).columns
            if c.startswith("provenance.") and c not in ("provenance.threads", "provenance.logical_cores")]
    return pd.read_csv(path, dtype=dict.fromkeys(text, str))


def _optional(path) -> pd.DataFrame:
    return pd.read_csv(path) if path else pd.DataFrame(columns=["dataset", "arch"])


def adaptive_summary(claims: pd.DataFrame, config: dict) -> dict | None:
    """What the report says about adaptive seeding (None when it was off)."""
    if not config.get("adaptive") or "look" not in claims:
        return None
    from bnbench.config import looks

    return {**config["adaptive"], "looks": looks(config), "looks_run": int(claims["look"].max())}


def write_report(summary, stats, comparisons, claims, figures, config_json: str, out, stability=None,
                 bn_diagnostics=None, variance=None) -> None:
    runs, stats_table = read_summary(summary), pd.read_csv(stats)
    comparisons, claims = pd.read_csv(comparisons), pd.read_csv(claims)
    stability, bn_gap, variance = _optional(stability), _optional(bn_diagnostics), _optional(variance)
    summary = runs[runs["sweep"] == sweeps.BASE]  # the datasets' own settings; the sweeps have their own figures
    config = json.loads(config_json)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    html = env.get_template("report.html.j2").render(
        n_runs=len(runs), n_sweep_runs=int(runs['sweep'].isin(list(sweeps.AXES)).sum()),
        n_crossed_runs=int((runs['sweep'] == sweeps.ORDER_SEED).sum()), bn_bought=bn_bought(claims),
        headline=headline(summary, config.get("equivalence_margins")), claims=claims_table(claims),
        n_claim_tests=int(claims["p_value"].notna().sum()), min_pairs=config.get("min_pairs", 5),
        sections=_sections(summary, stats_table, comparisons, [Path(f) for f in figures], stability, bn_gap, variance),
        adaptive=adaptive_summary(claims, config), any_variance=len(variance) > 0,
        provenance=provenance(runs), config=json.dumps(json.loads(config_json), indent=2),
        n_diverged=int(runs["diverged"].sum()), diverged=diverged_table(runs), n_missed=int((~runs["reached_target"]).sum()),
    )
    atomic_write(Path(out), lambda handle: handle.write(html))
