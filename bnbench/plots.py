"""Seaborn figures of one dataset x arch, written as SVG (one function per figure)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bnbench import stats  # noqa: E402
from bnbench.results import atomic_write  # noqa: E402

CI = dict(errorbar=("ci", 95), n_boot=1000, seed=0)


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda handle: fig.savefig(handle, format="svg", bbox_inches="tight"), mode="wb")
    plt.close(fig)


def _width(variants: list[str]) -> float:
    return max(6.0, 1.1 * len(variants))


def learning_curves(history: pd.DataFrame, variants: list[str], column: str, label: str):
    grid = sns.relplot(data=history, x="epoch", y=column, hue="variant", hue_order=variants,
                       col="framework", kind="line", **CI, height=3.6, aspect=1.2)
    grid.set_axis_labels("epoch", label)
    grid.figure.suptitle(f"{label.capitalize()}: mean and 95 % CI over seeds", y=1.03)
    return grid.figure


def test_accuracy(summary: pd.DataFrame, variants: list[str]):
    fig, ax = plt.subplots(figsize=(_width(variants), 4))
    common = dict(data=summary, x="variant", y="test_accuracy", hue="framework", order=variants, ax=ax)
    sns.stripplot(**common, dodge=True, alpha=0.45, size=4, legend=False)
    dodge = 0.4 if summary.framework.nunique() > 1 else False  # seaborn divides by (frameworks - 1)
    sns.pointplot(**common, dodge=dodge, linestyle="none", **CI, markers="D", capsize=0.15)
    ax.set_ylabel("test accuracy")
    ax.set_title("Final test accuracy: one dot per seed, mean and 95 % CI")
    ax.tick_params(axis="x", rotation=30)
    return fig


def epochs_to_target(summary: pd.DataFrame, variants: list[str], epochs: int, target: float):
    """Runs that never reach the target are drawn as red crosses above a dashed line, not dropped."""
    frame = summary.assign(shown=stats.censored(summary, "epochs_to_target"))
    fig, ax = plt.subplots(figsize=(_width(variants), 4))
    common = dict(x="variant", y="shown", hue="framework", order=variants, ax=ax)
    sns.boxplot(data=frame[frame.reached_target], **common, fliersize=0, boxprops={"alpha": 0.35})
    sns.stripplot(data=frame[frame.reached_target], **common, dodge=True, size=4, alpha=0.7, legend=False)
    missed = frame[~frame.reached_target]
    if len(missed):
        sns.stripplot(data=missed, **common, dodge=True, size=7, marker="X", color="crimson", legend=False)
    ax.axhline(epochs + 0.5, ls="--", color="grey", lw=1)
    ax.text(0.99, epochs + 1, f"never reached ({len(missed)} runs)", ha="right", va="bottom", color="crimson",
            transform=ax.get_yaxis_transform())
    ax.set_ylabel(f"epochs to val. accuracy >= {target}")
    ax.set_title("Epochs to target (red crosses above the dashed line never reached it)")
    ax.tick_params(axis="x", rotation=30)
    return fig


def performance_profile(summary: pd.DataFrame, variants: list[str], epochs: int, target: float):
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
    """Keras vs PyTorch final test accuracy per seed (same initial weights and batches): y = x is agreement."""
    wide = summary.pivot_table(index=["variant", "seed"], columns="framework", values="test_accuracy").reset_index()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if {"keras", "torch"} <= set(wide.columns):
        sns.scatterplot(data=wide, x="keras", y="torch", hue="variant", hue_order=variants, ax=ax)
        low, high = np.nanmin(wide[["keras", "torch"]].values), np.nanmax(wide[["keras", "torch"]].values)
        ax.plot([low, high], [low, high], ls="--", color="grey", lw=1)
    ax.set(xlabel="Keras test accuracy", ylabel="PyTorch test accuracy",
           title="Keras vs PyTorch, one dot per variant and seed")
    return fig


FIGURES = ("val_accuracy", "train_loss", "test_accuracy", "epochs_to_target", "performance_profile",
           "improvement", "agreement")


def write_figures(history_path, summary_path, comparisons_path, dataset: str, arch: str, outdir) -> None:
    sns.set_theme(style="whitegrid", context="notebook")
    select = lambda frame: frame[(frame.dataset == dataset) & (frame.arch == arch)]  # noqa: E731
    history, summary = select(pd.read_parquet(history_path)), select(pd.read_csv(summary_path))
    comparisons = select(pd.read_csv(comparisons_path))
    variants = list(dict.fromkeys(summary["variant"]))
    epochs, target = int(summary["run.epochs"].max()), float(summary["target_accuracy"].iloc[0])
    figures = {
        "val_accuracy": lambda: learning_curves(history, variants, "val_accuracy", "validation accuracy"),
        "train_loss": lambda: learning_curves(history, variants, "train_loss", "training loss"),
        "test_accuracy": lambda: test_accuracy(summary, variants),
        "epochs_to_target": lambda: epochs_to_target(summary, variants, epochs, target),
        "performance_profile": lambda: performance_profile(summary, variants, epochs, target),
        "improvement": lambda: improvement_forest(comparisons, variants),
        "agreement": lambda: framework_agreement(summary, variants),
    }
    for name in FIGURES:
        _save(figures[name](), Path(outdir) / f"{name}.svg")
