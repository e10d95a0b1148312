"""The figures of one dataset x arch, written as SVG, and the figure table (FIGURES) that the plots rule's
outputs, the HTML report and Snakemake's --report all read.

Adding a figure is one entry: a function decorated with @figure(category, caption) that takes a Panel
and returns a matplotlib figure; its name is the figure's name.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from bnbench import sweeps
from bnbench.analysis import metrics, sensitivity, stats
from bnbench.files import atomic_write


def _lazy(name: str):
    """Import `name` on first use: the Snakefile reads FIGURES at every start, and matplotlib with
    seaborn costs it about a second (the recipe of importlib's documentation)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ImportError(f"{name} is not installed; install requirements.txt (make setup)")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


plt = _lazy("matplotlib.pyplot")
sns = _lazy("seaborn")

CI = dict(errorbar=lambda values: stats.mean_ci(values))  # the report's interval (Student t)


@dataclass(frozen=True)
class Panel:
    """What a figure of one dataset x arch draws from: its rows of the combined tables (history and summary:
    the base runs; runs: every run, sweeps included; points: each swept axis' curve, sensitivity.points)."""

    dataset: str
    arch: str
    history: pd.DataFrame
    summary: pd.DataFrame
    runs: pd.DataFrame
    points: pd.DataFrame
    comparisons: pd.DataFrame
    variants: list[str]  # in config order
    epochs: int
    target: float
    target_ladder: list[float]  # from config, or derived from the baseline (metrics.ladder)
    bn_layers: pd.DataFrame  # bn_statistics.csv: one row per run x BN layer (its base runs)
    variance: pd.DataFrame  # variance.csv's rows


@dataclass(frozen=True)
class Figure:
    name: str
    draw: Callable[[Panel], object]
    category: str  # the report section (Snakemake's --report category): Convergence, Accuracy, Frameworks
    caption: str  # one or two sentences, shown under the figure in both reports


FIGURES: dict[str, Figure] = {}  # in report order


def figure(category: str, caption: str):
    """Register the decorated function as a figure named after it."""
    def register(draw: Callable[[Panel], object]):
        FIGURES[draw.__name__] = Figure(draw.__name__, draw, category, caption)
        return draw
    return register


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda handle: fig.savefig(handle, format="svg", bbox_inches="tight"), mode="wb")
    plt.close(fig)


def _width(variants: list[str]) -> float:
    return max(6.0, 1.1 * len(variants))


def _note(text: str):
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig


def _without_values(frame: pd.DataFrame, column: str) -> list[str]:
    """The variant (framework) cells of `frame` with no finite value in `column` (every run diverged)."""
    finite = np.isfinite(pd.to_numeric(frame[column], errors="coerce").to_numpy(float))
    cells = pd.Series(finite, index=frame.index).groupby([frame["variant"], frame["framework"]], sort=False).any()
    return [f"{variant} ({framework})" for (variant, framework), drawn in cells.items() if not drawn]


def _drawable(frame: pd.DataFrame, column: str, what: str):
    """(None, cells without values) when `frame` has finite values of `column` to draw; else (a note figure
    saying why not, ...): an all-NaN column (every run diverged) or no runs at all gets a note, not a crash."""
    empty = _without_values(frame, column) if len(frame) else []
    if frame.empty or np.isfinite(pd.to_numeric(frame[column], errors="coerce").to_numpy(float)).sum() == 0:
        why = "no runs" if frame.empty else f"every run diverged before a finite value ({len(frame)} rows)"
        return _note(f"No {what} to draw: {why}"), empty
    return None, empty


def _mark_missing(fig, cells: list[str], what: str):
    """Name the cells a figure could not draw (every run diverged), under the figure."""
    if cells:
        fig.text(0.01, -0.06, f"Not drawn, no finite {what} (every run diverged): " + ", ".join(cells),
                 fontsize="small", color="crimson", wrap=True)
    return fig


def learning_curves(history: pd.DataFrame, variants: list[str], column: str, label: str):
    note, missing = _drawable(history, column, label)
    if note:
        return note
    grid = sns.relplot(data=history, x="epoch", y=column, hue="variant", hue_order=variants,
                       col="framework", kind="line", **CI, height=3.6, aspect=1.2)
    grid.set_axis_labels("epoch", label)
    grid.figure.suptitle(f"{label.capitalize()}: mean and 95 % CI over seeds", y=1.03)
    return _mark_missing(grid.figure, missing, label)


def accuracy_per_seed(summary: pd.DataFrame, variants: list[str]):
    note, missing = _drawable(summary, "test_accuracy", "test accuracy")
    if note:
        return note
    fig, ax = plt.subplots(figsize=(_width(variants), 4))
    common = dict(data=summary, x="variant", y="test_accuracy", hue="framework", order=variants, ax=ax)
    sns.stripplot(**common, dodge=True, alpha=0.45, size=4, legend=False)
    dodge = 0.4 if summary.framework.nunique() > 1 else False  # seaborn divides by (frameworks - 1)
    sns.pointplot(**common, dodge=dodge, linestyle="none", **CI, markers="D", capsize=0.15)
    ax.set_ylabel("test accuracy")
    ax.set_title("Final test accuracy: one dot per seed, mean and 95 % CI")
    ax.tick_params(axis="x", rotation=30)
    return _mark_missing(fig, missing, "test accuracy")


def epochs_to_target_spread(summary: pd.DataFrame, variants: list[str], epochs: int, target: float):
    """Runs that never reach the target are drawn as red crosses above a dashed line, not dropped."""
    frame = summary.assign(shown=stats.censored(summary, "epochs_to_target"))
    fig, ax = plt.subplots(figsize=(_width(variants), 4))
    common = dict(x="variant", y="shown", hue="framework", order=variants, ax=ax)
    sns.boxplot(data=frame[frame.reached_target], **common, fliersize=0, boxprops={"alpha": 0.35})
    sns.stripplot(data=frame[frame.reached_target], **common, dodge=True, size=4, alpha=0.7, legend=False)
    missed = frame[~frame.reached_target]
    if len(missed):
        sns.stripplot(data=missed, **common, dodge=True, size=7, marker="X", legend=False,
                      palette=dict.fromkeys(frame.framework.unique(), "crimson"))
    ax.axhline(epochs + 0.5, ls="--", color="grey", lw=1)
    ax.text(0.99, epochs + 1, f"never reached ({len(missed)} runs)", ha="right", va="bottom", color="crimson",
            transform=ax.get_yaxis_transform())
    ax.set_ylabel(f"epochs to val. accuracy >= {target}")
    ax.set_title("Epochs to target (red crosses above the dashed line never reached it)")
    ax.tick_params(axis="x", rotation=30)
    return fig


def performance_profile_curves(summary: pd.DataFrame, variants: list[str], epochs: int, target: float):
    """Fraction of runs that have reached the target by epoch e (misses keep the curve below 1)."""
    rows = []
    for (variant, framework), group in summary.groupby(["variant", "framework"]):
        reached = group["epochs_to_target"].to_numpy(float)
        for epoch in range(1, epochs + 1):
            rows.append({"variant": variant, "framework": framework, "epoch": epoch,
                         "fraction": float(np.mean(reached <= epoch))})
    grid = sns.relplot(data=pd.DataFrame(rows), x="epoch", y="fraction", hue="variant", hue_order=variants,
                       col="framework", kind="line", drawstyle="steps-post", height=3.6, aspect=1.2)
    grid.set_axis_labels("epoch", f"fraction of runs at val. accuracy >= {target}")
    grid.set(ylim=(-0.02, 1.02))
    grid.figure.suptitle("Performance profile: share of runs that reached the target by each epoch", y=1.03)
    return grid.figure


def improvement_forest(comparisons: pd.DataFrame, variants: list[str]):
    """P(variant better than the baseline) with 95 % CIs, one panel per metric."""
    frame = comparisons[comparisons.comparison == "variant_vs_baseline"] if len(comparisons) else comparisons
    metrics = list(dict.fromkeys(frame.metric)) if len(frame) else []
    if not metrics:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "No comparison: the baseline variant 'none' was not run", ha="center", va="center")
        return fig
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 0.45 * len(variants) + 1.5),
                             sharey=True, squeeze=False)
    order = [v for v in variants if v in set(frame.variant)]
    offsets = {"keras": -0.15, "torch": 0.15}
    for ax, metric in zip(axes[0], metrics):
        for framework, group in frame[frame.metric == metric].groupby("framework"):
            group = group.set_index("variant").reindex(order)
            y = np.arange(len(order)) + offsets.get(framework, 0)
            ax.errorbar(group.p_improvement, y, fmt="o", label=framework,
                        xerr=[group.p_improvement - group.p_improvement_ci_low,
                              group.p_improvement_ci_high - group.p_improvement])
        ax.axvline(0.5, ls="--", color="grey", lw=1)
        ax.set(xlim=(-0.02, 1.02), title=metric.replace("_", " "), xlabel="P(variant better than none)")
        ax.set_yticks(np.arange(len(order)), order)
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(loc="lower right")
    fig.suptitle("Probability of improvement over the no-BN baseline (95 % CI)", y=1.02)
    return fig


def framework_agreement(summary: pd.DataFrame, variants: list[str]):
    """Keras vs PyTorch final test accuracy per run (same initial weights, batches and dropout masks), base
    and sweep runs (marker: the swept axis): y = x is agreement."""
    keys = ["variant", "sweep", "sweep_value", "seed"]
    frame = summary.assign(sweep_value=summary["sweep_value"].fillna(-1.0))  # base runs: no value
    wide = frame.pivot_table(index=keys, columns="framework", values="test_accuracy").reset_index()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if {"keras", "torch"} <= set(wide.columns) and wide[["keras", "torch"]].notna().any().all():
        sns.scatterplot(data=wide, x="keras", y="torch", hue="variant", hue_order=variants, style="sweep", ax=ax)
        low, high = np.nanmin(wide[["keras", "torch"]].values), np.nanmax(wide[["keras", "torch"]].values)
        ax.plot([low, high], [low, high], ls="--", color="grey", lw=1)
    ax.set(xlabel="Keras test accuracy", ylabel="PyTorch test accuracy",
           title="Keras vs PyTorch, one dot per variant and seed")
    return fig


# --- the figure table: report order --------------------------------------------------------------

@figure("Convergence", "Validation accuracy per epoch: mean over seeds with a 95 % CI band, one line "
                       "per variant, one panel per framework.")
def val_accuracy(panel: Panel):
    return learning_curves(panel.history, panel.variants, "val_accuracy", "validation accuracy")


@figure("Convergence", "Training loss (first 10 000 training samples, evaluated in inference mode) per epoch: "
                       "mean over seeds with a 95 % CI band, one panel per framework.")
def train_loss(panel: Panel):
    return learning_curves(panel.history, panel.variants, "train_loss", "training loss")


@figure("Convergence", "Epochs until validation accuracy first reaches the target; runs that never reach it "
                       "are red crosses above the dashed line, not dropped.")
def epochs_to_target(panel: Panel):
    return epochs_to_target_spread(panel.summary, panel.variants, panel.epochs, panel.target)


@figure("Convergence", "Share of runs whose validation accuracy has reached the target by each epoch (a curve "
                       "that stays below 1 means some runs never got there).")
def performance_profile(panel: Panel):
    return performance_profile_curves(panel.summary, panel.variants, panel.epochs, panel.target)


@figure("Accuracy", "Final test accuracy per variant and framework: one dot per seed, mean and 95 % CI.")
def test_accuracy(panel: Panel):
    return accuracy_per_seed(panel.summary, panel.variants)


@figure("Accuracy", "Probability that a variant beats the no-BN baseline on a random pair of runs (0.5 = no "
                    "difference), per metric and framework, with 95 % stratified-bootstrap CIs.")
def improvement(panel: Panel):
    return improvement_forest(panel.comparisons, panel.variants)


@figure("Frameworks", "Keras against PyTorch final test accuracy for the same variant, sweep point and seed "
                      "(same initial weights, batch order and dropout masks), sweep and crossed-seed runs included "
                      "(marker: the swept axis, or order_seed); points on the dashed line agree exactly.")
def agreement(panel: Panel):
    return framework_agreement(panel.runs, panel.variants)


# --- sweeps: one sensitivity figure per axis (sweeps.AXES), the stability map ---------------------

def sensitivity_curves(points: pd.DataFrame, variants: list[str], axis: str):
    """Test accuracy against the swept value: mean and 95 % CI per variant, one panel per framework; diverged
    runs as red crosses at their (stopped) network's accuracy, so they stay visible."""
    runs = points[points["sweep"] == axis]
    if runs.empty:
        return _note(f"{sweeps.AXES[axis].label} was not swept here (config: datasets.<name>.sweeps.{axis})")
    note, missing = _drawable(runs, "test_accuracy", "test accuracy")
    if note:
        return note
    order = [v for v in variants if v in set(runs.variant)]
    grid = sns.relplot(data=runs, x="sweep_value", y="test_accuracy", hue="variant", hue_order=order,
                       col="framework", kind="line", marker="o", **CI, height=3.6, aspect=1.2)
    diverged = runs[runs["diverged"].astype(bool)]
    for framework, ax in grid.axes_dict.items():
        mine = diverged[diverged.framework == framework]
        if len(mine):
            ax.scatter(mine["sweep_value"], mine["test_accuracy"].fillna(0.0), marker="x", color="crimson",
                       zorder=5, label=f"diverged ({len(mine)} runs)")
            ax.legend(loc="lower left", fontsize="small")
        if sweeps.AXES[axis].log_scale:
            ax.set_xscale("log", base=2 if sweeps.AXES[axis].whole else 10)
    grid.set_axis_labels(sweeps.AXES[axis].label, "test accuracy")
    grid.figure.suptitle(f"Sensitivity to the {sweeps.AXES[axis].label}: mean and 95 % CI over seeds "
                         f"(red crosses: diverged runs)", y=1.03)
    return _mark_missing(grid.figure, missing, "test accuracy")


def _sensitivity_figure(axis: str):
    def draw(panel: Panel):
        return sensitivity_curves(panel.points, panel.variants, axis)

    draw.__name__ = f"sensitivity_{axis}"
    return draw


for _axis in sweeps.AXES:
    figure("Sweeps", f"Final test accuracy against the {sweeps.AXES[_axis].label}, varied alone around the "
                     f"dataset's settings: mean over seeds with a 95 % CI band per variant, one panel per framework; "
                     f"diverged runs are red crosses. A note instead when it was not swept.")(_sensitivity_figure(_axis))


def stability_heatmaps(points: pd.DataFrame, variants: list[str]):
    """variant x learning rate, per framework: colour = fraction of runs reaching the target (sustained),
    number = mean test accuracy."""
    runs = points[points["sweep"] == "learning_rate"]
    if runs.empty:
        return _note("The learning rate was not swept here (config: datasets.<name>.sweeps.learning_rate)")
    frameworks = sorted(runs.framework.unique())
    order = [v for v in variants if v in set(runs.variant)]
    fig, axes = plt.subplots(1, len(frameworks), figsize=(1.1 * runs.sweep_value.nunique() * len(frameworks) + 2,
                                                         0.5 * len(order) + 1.8), squeeze=False)
    for ax, framework in zip(axes[0], frameworks):
        mine = runs[runs.framework == framework].assign(reached=lambda f: f["epochs_to_target"].notna())
        cells = mine.groupby(["variant", "sweep_value"]).agg(reached=("reached", "mean"),
                                                              accuracy=("test_accuracy", "mean"))
        colour = cells["reached"].unstack().reindex(order)
        numbers = cells["accuracy"].unstack().reindex(order)
        sns.heatmap(colour, vmin=0, vmax=1, cmap="viridis", annot=numbers, fmt=".2f", cbar=ax is axes[0][-1],
                    cbar_kws={"label": "fraction reaching the target"}, ax=ax)
        ax.set_xticklabels([sweeps.value_text(float(t.get_text())) for t in ax.get_xticklabels()])
        ax.set(title=framework, xlabel="learning rate", ylabel="")
    fig.suptitle("Stability map: colour = share of runs reaching the target, number = mean test accuracy", y=1.02)
    return fig


@figure("Sweeps", "Stability map per framework: variant x learning rate; the colour is the share of runs that "
                  "reach the target (sustained, without diverging), the number the mean test accuracy.")
def stability_map(panel: Panel):
    return stability_heatmaps(panel.points, panel.variants)


# --- BN's train/inference gap, variance by source -------------------------------------------------------

@figure("BN statistics", "BN's train/inference gap (base runs of the variants with moving statistics). Left: test "
                         "accuracy with population statistics recomputed over the training set minus test accuracy "
                         "with the moving statistics, same weights (mean and 95 % CI over seeds). Right: how far the "
                         "last mini-batch's and the training set's statistics lie from the moving ones (mean shift "
                         "in moving standard deviations, averaged over the BN layers).")
def bn_gap(panel: Panel):
    runs = panel.summary[panel.summary["population_test_accuracy"].notna()]
    if runs.empty:
        return _note("No BN diagnostics: no variant here keeps moving statistics (BN or batch renorm)")
    order = [v for v in panel.variants if v in set(runs.variant)]
    gains = runs.assign(gain=runs["population_test_accuracy"] - runs["test_accuracy"])
    layers = panel.bn_layers.groupby(["variant", "framework", "seed"], sort=False)[
        ["last_batch_mean_gap", "population_mean_gap"]].mean().reset_index()
    shifts = layers.melt(id_vars=["variant", "framework", "seed"], var_name="statistics", value_name="shift")
    shifts["statistics"] = shifts["statistics"].map({"last_batch_mean_gap": "last batch", "population_mean_gap": "training set"})
    fig, (left, right) = plt.subplots(1, 2, figsize=(2 * _width(order), 4))
    sns.pointplot(data=gains, x="variant", y="gain", hue="framework", order=order, linestyle="none", ax=left,
                  dodge=0.3 if gains["framework"].nunique() > 1 else False, **CI)  # (seaborn: no dodge for one hue)
    left.axhline(0, color="grey", lw=1)
    left.set(xlabel="", ylabel="population − moving statistics, test accuracy")
    sns.pointplot(data=shifts, x="variant", y="shift", hue="statistics", order=order, dodge=0.3, linestyle="none",
                  ax=right, **CI)
    right.set(xlabel="", ylabel="|mean − moving mean| / moving std")
    for ax in (left, right):
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle("BN's train/inference gap: mean and 95 % CI over seeds and frameworks' runs")
    return fig


SHARES = {"init_share": "initialization", "order_share": "data order", "interaction_share": "interaction"}


@figure("Variance", "Variance by source over crossed runs (every initialization seed with every data-order seed): "
                    "the share of each variant's test-accuracy variance due to the initial weights, the data order "
                    "(batch order and dropout masks) and their interaction (ANOVA estimates, pigeonhole-bootstrap "
                    "95 % CIs).")
def variance_by_source(panel: Panel):
    rows = panel.variance[panel.variance["metric"] == "test_accuracy"]
    if rows.empty or rows["init_share"].isna().all():
        return _note("No crossed runs here (config: datasets.<name>.variance: variants, init_seeds, order_seeds)")
    labels = [f"{v}\n{f}" for v, f in zip(rows["variant"], rows["framework"])]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4))
    width, x = 0.27, np.arange(len(rows))
    for offset, (share, label) in zip((-width, 0.0, width), SHARES.items()):
        values = rows[share].to_numpy(float)
        # (a percentile interval need not contain the estimate: its bar then starts at the estimate)
        errors = np.clip(np.vstack([values - rows[f"{share}_low"], rows[f"{share}_high"] - values]), 0, None)
        ax.bar(x + offset, values, width, yerr=np.nan_to_num(errors), capsize=2, label=label)
    ax.set_xticks(x, labels, rotation=30)
    ax.set(ylim=(0, 1), ylabel="share of test-accuracy variance")
    ax.legend(title="source", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"Variance by source ({int(rows['n_init'].max())} initialization x {int(rows['n_order'].max())} "
                 f"data-order seeds)")
    return fig


def write_caption_files(folder: str | Path) -> dict[str, str]:
    """Snakemake's --report reads a caption file (reStructuredText, rendered with Jinja2) per output:
    one per figure of the table, rewritten only when its text changed. Returns name -> path."""
    paths = {}
    for name, fig in FIGURES.items():
        path = Path(folder) / f"{name}.rst"
        text = f"{{{{ snakemake.wildcards.dataset }}}} / {{{{ snakemake.wildcards.arch }}}}: {fig.caption}\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write(path, lambda handle, text=text: handle.write(text))
        paths[name] = str(path)
    return paths


def baseline_accuracies(summary: pd.DataFrame, baseline: str = "none") -> pd.Series:
    """Final validation accuracies of the baseline's runs (of all runs when it was not run)."""
    base = summary[summary.variant == baseline]
    return (base if len(base) else summary)["val_accuracy"].dropna()


def ladder_epochs(history: pd.DataFrame, targets: list[float], epochs: int) -> pd.DataFrame:
    """Per run and target: the sustained epochs to the target (metrics.epochs_to_target), a miss counted
    as epochs + 1."""
    rows = []
    for (variant, framework, seed), run in history.groupby(["variant", "framework", "seed"], sort=False):
        records = run.sort_values("epoch")[["epoch", "val_accuracy"]].to_dict("records")
        for target in targets:
            reached = metrics.epochs_to_target(records, target, epochs)
            rows.append({"variant": variant, "framework": framework, "seed": seed, "target": target,
                         "epochs": epochs + 1 if reached is None else reached})
    return pd.DataFrame(rows)


@figure("Convergence", "Target ladder: epochs until validation accuracy stays at each of several targets (mean "
                       "over seeds with a 95 % CI; a run that never settles at a target counts as epochs + 1, the "
                       "dashed line). The targets come from the config's target_ladder or, by default, from the "
                       "percentiles of the no-BN baseline's final validation accuracy.")
def target_ladder(panel: Panel):
    frame = ladder_epochs(panel.history, panel.target_ladder, panel.epochs)
    if frame.empty:
        return _note("No target ladder: no finite final validation accuracy of the baseline to derive targets "
                     "from (set datasets.<name>.target_ladder)")
    grid = sns.relplot(data=frame, x="target", y="epochs", hue="variant", hue_order=panel.variants,
                       col="framework", kind="line", marker="o", **CI, height=3.6, aspect=1.2)
    for ax in grid.axes.flat:
        ax.axhline(panel.epochs + 1, ls="--", color="grey", lw=1)
    grid.set_axis_labels("target validation accuracy", "epochs to target (misses: epochs + 1)")
    grid.figure.suptitle("Target ladder: " + ", ".join(f"{t:g}" for t in panel.target_ladder), y=1.03)
    return grid.figure


def figure_path(outdir: str | Path, name: str) -> Path:
    return Path(outdir) / f"{name}.svg"


def write_figures(history_path, summary_path, comparisons_path, dataset: str, arch: str, outdir,
                  bn_statistics_path, variance_path, target_ladder: list[float] | None = None) -> None:
    """Every figure of FIGURES for one dataset x arch, as outdir/<name>.svg."""
    plt.switch_backend("Agg")  # files only, whatever the user's MPLBACKEND (compute nodes have no display)
    sns.set_theme(style="whitegrid", context="notebook")
    select = lambda frame: frame[(frame.dataset == dataset) & (frame.arch == arch)]  # noqa: E731
    base = lambda frame: frame[frame["sweep"] == sweeps.BASE]  # noqa: E731
    runs = select(pd.read_csv(summary_path))
    summary = base(runs)
    panel = Panel(dataset, arch, history=base(select(pd.read_parquet(history_path))), summary=summary,
                  runs=runs, points=sensitivity.points(runs),
                  comparisons=select(pd.read_csv(comparisons_path)), variants=list(dict.fromkeys(summary["variant"])),
                  epochs=int(summary["run.epochs"].max()), target=float(summary["run.target_accuracy"].iloc[0]),
                  target_ladder=target_ladder or metrics.ladder(baseline_accuracies(summary)),
                  bn_layers=base(select(pd.read_csv(bn_statistics_path))),
                  variance=select(pd.read_csv(variance_path)))
    for name, fig in FIGURES.items():
        _save(fig.draw(panel), figure_path(outdir, name))
