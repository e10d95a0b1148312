"""The run record: what one training run writes (history.csv, summary.json), and combining runs into
tidy tables. The one place the run keys and summary.json's keys are spelled."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bnbench import BnbenchError, sweeps
from bnbench.analysis.metrics import run_metrics
from bnbench.files import atomic_write
from bnbench.training.diagnostics import GAP_KEYS

# What identifies a run (and its folder); GROUP_KEYS: runs that differ only in seed form one statistical group.
# `sweep` is the swept axis (bnbench.sweeps) or "base" (the dataset's own settings, `sweep_value` None).
RUN_KEYS = ("dataset", "arch", "variant", "framework", "sweep", "sweep_value", "seed")
GROUP_KEYS = RUN_KEYS[:-1]
# The rest of a run's resolved settings (bnbench.config.resolve_run); `device` is optional (auto).
SETTING_KEYS = ("epochs", "batch_size", "optimizer", "target_accuracy", "bn", "init_scale", "dropout")
EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds")
HISTORY_COLUMNS = [*RUN_KEYS, *EPOCH_COLUMNS]
FINAL_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")  # of the last epoch trained
DIAGNOSTIC_KEYS = ("population_test_loss", "population_test_accuracy", "bn_statistics")


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
        # BN's train/inference gap (bnbench.training.diagnostics); None / [] without moving statistics
        **{key: outcome[key] for key in DIAGNOSTIC_KEYS},
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


def write_tables(run_dirs: list[str | Path], history_path: str | Path, summary_path: str | Path,
                 bn_statistics_path: str | Path) -> tuple[int, int]:
    """The combine rule: history.parquet, summary.csv and bn_statistics.csv of the runs in `run_dirs`;
    (runs, epochs)."""
    history, summary = combine(run_dirs)
    layers = bn_statistics(summary)
    atomic_write(Path(history_path), lambda handle: history.to_parquet(handle, index=False), mode="wb")
    atomic_write(Path(summary_path), lambda handle: summary.drop(columns="bn_statistics").to_csv(handle, index=False))
    atomic_write(Path(bn_statistics_path), lambda handle: layers.to_csv(handle, index=False))
    return len(summary), len(history)


BN_STATISTICS_COLUMNS = [*RUN_KEYS, "layer", "channels", *GAP_KEYS]


def bn_statistics(summary):
    """bn_statistics.csv: one row per run x BN layer with that layer's train/inference gaps
    (bnbench.training.diagnostics), from summary.json's `bn_statistics` lists."""
    import pandas as pd

    rows = [{**{key: run[key] for key in RUN_KEYS}, **layer}
            for run in summary.to_dict("records") for layer in run["bn_statistics"]]
    return pd.DataFrame(rows, columns=BN_STATISTICS_COLUMNS)


class DamagedRun(BnbenchError):
    pass


def _damaged(path: Path, problem: str) -> DamagedRun:
    return DamagedRun(f"{path}: {problem}; the file is damaged or not bnbench's: delete the run's folder "
                      f"{path.parent} and rerun snakemake to retrain it")


# What every summary.json holds besides the run keys (summary_record).
SUMMARY_KEYS = ("run", *FINAL_METRICS, "test_loss", "test_accuracy", *DIAGNOSTIC_KEYS, "diverged", "diverged_epoch",
                "epochs_trained", "reached_target")


def read_summary(folder: Path) -> dict:
    """A run's summary.json, checked: JSON, a mapping with summary_record's keys, the run keys of its folder."""
    path = folder / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _damaged(path, f"not valid JSON ({err})") from None
    if not isinstance(summary, dict):
        raise _damaged(path, f"holds a {type(summary).__name__}, not a run's summary")
    if missing := [key for key in (*RUN_KEYS, *SUMMARY_KEYS) if key not in summary]:
        raise _damaged(path, f"lacks {', '.join(missing)}")
    name = Path(run_name(summary)).parts  # the folder may be given relative to another directory
    if folder.resolve().parts[-len(name):] != name:
        raise _damaged(path, f"describes run {run_name(summary)}, not the run of its folder")
    epochs = summary["epochs_trained"]
    if not (isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 1):
        raise _damaged(path, f"epochs_trained {epochs!r} is not a whole number >= 1")
    return summary


def read_history(folder: Path, summary: dict):
    """A run's history.csv, checked against its summary.json: the columns, numbers in the epoch columns,
    epochs 1..epochs_trained in order, and the run keys of the run on every row."""
    import pandas as pd

    path = folder / "history.csv"
    try:
        history = pd.read_csv(path, dtype={key: str for key in RUN_KEYS[:5]}, keep_default_na=False,
                              na_values={c: ["", "nan", "NaN"] for c in (*EPOCH_COLUMNS, "sweep_value", "seed")})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise _damaged(path, f"not a history table ({str(err).splitlines()[0]})") from None
    if list(history.columns) != HISTORY_COLUMNS:
        raise _damaged(path, f"has columns {', '.join(map(str, history.columns))}, not {', '.join(HISTORY_COLUMNS)}")
    expected = {key: "" if summary[key] is None else str(summary[key]) for key in RUN_KEYS[:5]}
    for key, value in expected.items():
        if (wrong := history[key] != value).any():
            line = int(wrong.to_numpy().argmax()) + 2
            raise _damaged(path, f"line {line} has {key} {history[key][wrong].iloc[0]!r}, not {value!r} as the run")
    for column in ("seed", *EPOCH_COLUMNS):
        if not pd.api.types.is_numeric_dtype(history[column]):
            bad = history.loc[pd.to_numeric(history[column], errors="coerce").isna() & history[column].notna(), column]
            raise _damaged(path, f"column {column} holds {bad.iloc[0]!r} (line {bad.index[0] + 2}), not a number")
    epochs = summary["epochs_trained"]
    if history["epoch"].tolist() != list(range(1, epochs + 1)):
        raise _damaged(path, f"its epochs are not 1..{epochs} in order, as summary.json's epochs_trained says")
    if (history["seed"] != summary["seed"]).any() or not _same_value(history["sweep_value"], summary["sweep_value"]):
        raise _damaged(path, "its seed or sweep_value is not the run's")
    return history


def _same_value(column, value) -> bool:
    return bool(column.isna().all()) if value is None else bool((column == value).all())


def combine(run_dirs: list[str | Path]):
    """(history, summary) DataFrames: one row per epoch, one row per run (nested keys flattened with
    dots: run.epochs, provenance.host, ...), the run keys first. Every run's files are checked first
    (read_summary, read_history): a damaged file stops here with its name and the fix."""
    import pandas as pd

    folders = [Path(d) for d in run_dirs]
    summaries = [read_summary(folder) for folder in folders]
    history = pd.concat([read_history(folder, summary) for folder, summary in zip(folders, summaries)],
                        ignore_index=True)
    return history, summary_frame(summaries)


def summary_frame(summaries: list[dict]):
    """summary.json records as one table: nested keys flattened with dots, the run keys first."""
    import pandas as pd

    summary = pd.json_normalize(summaries, sep=".")
    first = [*RUN_KEYS, *(c for c in summary.columns
                          if c not in RUN_KEYS and not c.startswith(("run.", "provenance.")))]
    return summary[first + [c for c in summary.columns if c not in first]]
