"""One training job as a rule runs it: a run's settings and its dataset cache in, history.csv and
summary.json out (whole or not at all), resuming from the run's checkpoint when there is one."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from bnbench import BnbenchError, __version__, provenance, results
from bnbench.data import cache
from bnbench.files import temporary_path
from bnbench.training import backends
from bnbench.training.checkpoint import Checkpoints
from bnbench.training.loop import train
from bnbench.training.spec import ARCHS


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


def checkpoint_identity(run: dict, data_path: str | Path, threads: int, backend, code: str) -> dict:
    """What a run's results depend on: a checkpoint resumes only a run that matches in all of it
    (settings, the data itself, threads, versions and the training code)."""
    with open(data_path, "rb") as handle:  # the data itself: its settings never reach the train job
        data = hashlib.file_digest(handle, "sha256").hexdigest()
    return {"run": run, "data_sha256": data, "threads": threads, "bnbench": __version__,
            "versions": backend.versions(), "code_hash": code}


def run_job(run: dict, data_path: str | Path, history_path: str | Path, summary_path: str | Path,
            threads: int = 1, checkpoint_path: str | Path | None = None, checkpoint_every: int = 5,
            log: Callable[[str], None] = print) -> dict:
    """Train `run` on the dataset cache at `data_path`; write its history and summary; return the summary."""
    check_run(run)
    for path in filter(None, (history_path, summary_path, checkpoint_path)):  # left by a killed job
        temporary_path(Path(path)).unlink(missing_ok=True)
    backend = backends.load(run["framework"])
    data = cache.load(data_path)
    log(f"training {results.run_name(run)} for {run['epochs']} epochs on {threads} thread(s)")
    code = provenance.code_hash("train", run["dataset"])
    checkpoints = Checkpoints(Path(checkpoint_path), checkpoint_every,
                              checkpoint_identity(run, data_path, threads, backend, code), log) if checkpoint_path else None
    outcome = train(backend, run, data, threads=threads, log=log, checkpoints=checkpoints)
    summary = results.summary_record(run, outcome, provenance.collect(code, outcome["device"], threads,
                                                                      backend.versions()))
    results.write_history(history_path, run, outcome["history"])
    results.write_summary(summary_path, summary)
    if checkpoints:  # the outputs are complete: nothing left to resume
        checkpoints.remove()
    log(f"done: test accuracy {outcome['test_accuracy']:.4f}, "
        f"epochs to {run['target_accuracy']}: {summary['epochs_to_target']}")
    return summary
