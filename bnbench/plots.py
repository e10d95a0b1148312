"""Seaborn figures of one dataset x arch, written as SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

FIGURES = ("val_accuracy", "test_accuracy", "epochs_to_target")
FRAMEWORK_ORDER = ["keras", "torch"]


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="svg", bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def learning_curves(history: pd.DataFrame, variants: list[str]):
    grid = sns.relplot(data=history, x="epoch", y="val_accuracy", hue="variant", hue_order=variants,
                       col="framework", kind="line", errorbar=("ci", 95), n_boot=1000, seed=0,
                       height=3.6, aspect=1.2, facet_kws={"sharey": True})
    grid.set_axis_labels("epoch", "validation accuracy")
    grid.figure.suptitle("Validation accuracy: mean and 95 % CI over seeds", y=1.03)
    return grid.figure


def test_accuracy(summary: pd.DataFrame, variants: list[str]):
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(variants)), 4))
    common = dict(data=summary, x="variant", y="test_accuracy", hue="framework", order=variants, ax=ax)
    sns.stripplot(**common, dodge=True, alpha=0.45, size=4, legend=False)
    sns.pointplot(**common, dodge=0.4, linestyle="none", errorbar=("ci", 95), n_boot=1000, seed=0,
                  markers="D", capsize=0.15)
    ax.set_ylabel("test accuracy")
    ax.set_title("Final test accuracy: one dot per seed, mean and 95 % CI")
    ax.tick_params(axis="x", rotation=30)
    return fig


def epochs_to_target(summary: pd.DataFrame, variants: list[str], epochs: int, target: float):
    """Runs that never reach the target are drawn at epochs + 1, above a dashed line, not dropped."""
    frame = summary.assign(reached=summary["epochs_to_target"].notna(),
                           shown=summary["epochs_to_target"].fillna(epochs + 1))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(variants)), 4))
    common = dict(data=frame, x="variant", y="shown", hue="framework", order=variants, ax=ax)
    sns.boxplot(**common, fliersize=0, boxprops={"alpha": 0.35})
    sns.stripplot(**common, dodge=True, size=4, alpha=0.7, legend=False)
    ax.axhline(epochs + 0.5, ls="--", color="grey", lw=1)
    ax.text(0.99, epochs + 1, "never reached", ha="right", va="bottom", color="grey",
            transform=ax.get_yaxis_transform())
    ax.set_ylabel(f"epochs to val. accuracy >= {target}")
    ax.set_title("Epochs to target (runs above the dashed line never reached it)")
    ax.tick_params(axis="x", rotation=30)
    return fig


def write_figures(history_path, summary_path, dataset: str, arch: str, outdir) -> None:
    sns.set_theme(style="whitegrid", context="notebook")
    history = pd.read_parquet(history_path)
    summary = pd.read_csv(summary_path)
    history = history[(history.dataset == dataset) & (history.arch == arch)]
    summary = summary[(summary.dataset == dataset) & (summary.arch == arch)]
    variants = list(dict.fromkeys(summary["variant"]))
    outdir = Path(outdir)
    _save(learning_curves(history, variants), outdir / "val_accuracy.svg")
    _save(test_accuracy(summary, variants), outdir / "test_accuracy.svg")
    _save(epochs_to_target(summary, variants, int(summary["run.epochs"].max()),
                           float(summary["target_accuracy"].iloc[0])), outdir / "epochs_to_target.svg")
