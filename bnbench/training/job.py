"""One training job as a rule runs it: the settings of one or more runs (same dataset, arch and
framework) and their dataset cache in; each run's history.csv and summary.json out (whole or not at
all), one run after another in one process, so the framework's start-up is paid once per job.

A job that is killed and rerun loses every declared output (Snakemake deletes them first), so each
run's checkpoint file, which is not an output, outlives them: it holds a finished run's outputs until
the whole job is done (the rerun restores that run instead of training it again) and an unfinished
run's last training state (the rerun resumes it)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from bnbench import BnbenchError, __version__, provenance, results
from bnbench.data import cache
from bnbench.files import temporary_path
from bnbench.training import backends, loop
from bnbench.training.checkpoint import Checkpoints
from bnbench.training.spec import ARCHS

# What the runs of one job must share: one dataset in memory, one architecture, one framework.
JOB_KEYS = ("dataset", "arch", "framework", "device")


def check_run(run: dict) -> None:
    """A run's settings as the workflow writes them (bnbench.config.resolve_run): complete, a known
    architecture, whole numbers where whole numbers belong. The backends check the rest."""
    if missing := [key for key in (*results.RUN_KEYS, *results.SETTING_KEYS) if key not in run]:
        raise BnbenchError(f"--run lacks {', '.join(missing)}; pass a run's complete settings as the workflow "
                           f"does (bnbench.config.resolve_run)")
    if run["arch"] not in ARCHS:
        raise BnbenchError(f"--run arch {run['arch']!r} is unknown; use one of: {', '.join(ARCHS)}")
    for key, minimum in (("seed", 0), ("epochs", 1), ("batch_size", 1)):
        if type(run[key]) is not int or run[key] < minimum:
            raise BnbenchError(f"--run {key} {run[key]!r} is not a whole number >= {minimum}; write it unquoted")


def check_job(runs: list[dict], *paths: list) -> None:
    """Runs that one process can train one after another, each with its own output paths."""
    for run in runs:
        check_run(run)
    for key in JOB_KEYS:
        if len(values := {str(run.get(key, "auto")) for run in runs}) > 1:
            raise BnbenchError(f"--run: the runs of one job differ in {key} ({', '.join(sorted(values))}); "
                               f"give one job runs of one dataset, arch, framework and device")
    names = [results.run_name(run) for run in runs]
    if len(set(names)) < len(names):
        raise BnbenchError("--run names one run twice; give each run of a job once")
    for option, given in zip(("--history", "--summary", "--checkpoint"), paths):
        if given is not None and len(given) != len(runs):
            raise BnbenchError(f"{option} gives {len(given)} path(s) for {len(runs)} run(s); give one per run, "
                               f"in the order of --run")


def checkpoint_identity(run: dict, data_sha256: str, threads: int, backend, code: str) -> dict:
    """What a run's results depend on: a checkpoint resumes only a run that matches in all of it
    (settings, the data itself, threads, versions and the training code)."""
    return {"run": run, "data_sha256": data_sha256, "threads": threads, "bnbench": __version__,
            "versions": backend.versions(), "code_hash": code}


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def run_job(runs: dict | list[dict], data_path: str | Path, history_paths, summary_paths, threads: int = 1,
            checkpoint_paths=None, checkpoint_every: int = 5, log: Callable[[str], None] = print) -> list[dict]:
    """Train `runs` (one run's settings, or a list) one after another on the dataset cache at
    `data_path`; write each run's history and summary (paths: one, or a list in the order of `runs`);
    return the summaries."""
    runs, history_paths, summary_paths, checkpoint_paths = (
        [value] if isinstance(value, (dict, str, Path)) else value
        for value in (runs, history_paths, summary_paths, checkpoint_paths))
    check_job(runs, history_paths, summary_paths, checkpoint_paths)
    for path in [*history_paths, *summary_paths, *(checkpoint_paths or [])]:  # left by a killed job
        temporary_path(Path(path)).unlink(missing_ok=True)
    backend = backends.load(runs[0]["framework"])
    data = cache.load(data_path)
    # The data itself identifies a checkpoint's run: the dataset's settings never reach the job.
    data_sha256 = file_sha256(data_path) if checkpoint_paths else ""
    code = provenance.code_hash("train", runs[0]["dataset"])
    session, summaries, records = loop.Session(backend, data, threads), [], []
    one_variant = len({run["variant"] for run in runs}) == 1
    for index, run in enumerate(runs):
        label = f"seed{run['seed']}" if one_variant else f"{run['variant']}/seed{run['seed']}"
        run_log = log if len(runs) == 1 else _prefixed(log, f"{label}: ")
        checkpoints = (Checkpoints(Path(checkpoint_paths[index]), checkpoint_every,
                                   checkpoint_identity(run, data_sha256, threads, backend, code), run_log)
                       if checkpoint_paths else None)
        finished = checkpoints.finished() if checkpoints else None
        if finished:  # trained before this job was killed: its outputs are back, not retrained
            summary, history = finished
            run_log(f"restored: finished before the job was interrupted ({checkpoints.path})")
        else:
            run_log(f"training {results.run_name(run)} for {run['epochs']} epochs on {threads} thread(s)"
                    f" (run {index + 1} of {len(runs)})")
            outcome = session.train(run, run_log, checkpoints)
            history = outcome["history"]
            summary = results.summary_record(run, outcome, provenance.collect(code, outcome["device"], threads,
                                                                              backend.versions()))
            if checkpoints:
                checkpoints.save_final(summary, history)
        results.write_history(history_paths[index], run, history)
        results.write_summary(summary_paths[index], summary)
        run_log(f"done: test accuracy {summary['test_accuracy']:.4f}, "
                f"epochs to {run['target_accuracy']}: {summary['epochs_to_target']}")
        summaries.append(summary)
        records.append(checkpoints)
    for checkpoints in filter(None, records):  # every output is written: nothing left to restore or resume
        checkpoints.remove()
    return summaries


def _prefixed(log: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda message: log(prefix + message)
