"""The run record: what one training run writes (history.csv, summary.json), and combining runs into
tidy tables. The one place the run keys and summary.json's keys are spelled."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bnbench import sweeps
from bnbench.analysis.metrics import run_metrics
from bnbench.files import atomic_write

# What identifies a run (and its folder); GROUP_KEYS: runs that differ only in seed form one statistical group.
# `sweep` is the swept axis (bnbench.sweeps) or "base" (the dataset's own settings, `sweep_value` None).
RUN_KEYS = ("dataset", "arch", "variant", "framework", "sweep", "sweep_value", "seed")
GROUP_KEYS = RUN_KEYS[:-1]
# The rest of a run's resolved settings (bnbench.config.resolve_run); `device` is optional (auto).
SETTING_KEYS = ("epochs", "batch_size", "optimizer", "target_accuracy", "bn", "init_scale", "dropout")
EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds")
HISTORY_COLUMNS = [*RUN_KEYS, *EPOCH_COLUMNS]
FINAL_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")  # of the last epoch trained


def run_name(run: dict) -> str:
    """dataset/arch/variant/framework[/axis=value]/seed<n>, as the run's folder is named."""
    return run_folder(run).removeprefix(RUNS_FOLDER + "/")


RUNS_FOLDER = "results/runs"


def run_folder(run: dict) -> str:
    """A run's folder: results/runs/dataset/arch/variant/framework/seed1, a sweep point's with its axis and
    value before the seed (.../framework/learning_rate=0.003/seed1)."""
    point = sweeps.point_folder(run["sweep"], run["sweep_value"])
    parts = [RUNS_FOLDER, *(str(run[key]) for key in RUN_KEYS[:4]), *([point] if point else []), f"seed{run['seed']}"]
    return "/".join(parts)


def summary_record(run: dict, outcome: dict, provenance: dict) -> dict:
    """summary.json: the run keys, the run's settings (`run`, without the run keys), final metrics,
    convergence metrics, divergence and provenance; every key once."""
    history, last = outcome["history"], outcome["history"][-1]
    return {
        **{key: run[key] for key in RUN_KEYS},
        "run": {key: value for key, value in run.items() if key not in RUN_KEYS},
        **{key: last[key] for key in FINAL_METRICS},
        "test_loss": outcome["test_loss"], "test_accuracy": outcome["test_accuracy"],
        "train_test_gap": last["train_accuracy"] - outcome["test_accuracy"],  # overfitting (train: inference mode)
        **run_metrics(history, run["target_accuracy"], run["epochs"], outcome["diverged"]),
        "diverged": outcome["diverged"], "diverged_epoch": outcome["diverged_epoch"],
        "chance_accuracy": outcome.get("chance_accuracy"),
        "provenance": provenance,
    }


def write_history(path: str | Path, run: dict, records: list[dict]) -> None:
    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow({**{key: run[key] for key in RUN_KEYS}, **record})

    atomic_write(Path(path), write)


def write_summary(path: str | Path, summary: dict) -> None:
    atomic_write(Path(path), lambda handle: json.dump(summary, handle, indent=2, sort_keys=True))


def write_tables(run_dirs: list[str | Path], history_path: str | Path, summary_path: str | Path) -> tuple[int, int]:
    """The combine rule: history.parquet and summary.csv of the runs in `run_dirs`; (runs, epochs)."""
    history, summary = combine(run_dirs)
    atomic_write(Path(history_path), lambda handle: history.to_parquet(handle, index=False), mode="wb")
    atomic_write(Path(summary_path), lambda handle: summary.to_csv(handle, index=False))
    return len(summary), len(history)


def combine(run_dirs: list[str | Path]):
    """(history, summary) DataFrames: one row per epoch, one row per run (nested keys flattened with
    dots: run.epochs, provenance.host, ...), the run keys first."""
    import pandas as pd

    history = pd.concat([pd.read_csv(Path(d) / "history.csv") for d in run_dirs], ignore_index=True)
    summaries = [json.loads((Path(d) / "summary.json").read_text()) for d in run_dirs]
    summary = pd.json_normalize(summaries, sep=".")
    first = [*RUN_KEYS, *(c for c in summary.columns
                          if c not in RUN_KEYS and not c.startswith(("run.", "provenance.")))]
    summary = summary[first + [c for c in summary.columns if c not in first]]
    return history, summary
