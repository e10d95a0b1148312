"""Training checkpoints: what a run needs to go on exactly where it stopped after a kill or pre-emption.

Every `every` epochs the trainer's state (weights, BN moving statistics, optimizer buffers, the
framework's RNG state — see each backend's `Trainer.state`), NumPy's and Python's global RNG states,
the epoch and the history so far are written to one .npz: under a temporary name, flushed to disk,
then renamed, so a kill at any moment leaves the previous checkpoint or the new one, never a torn file.
A restarted job resumes from it when it was written for the same run settings, data and versions,
and the run's history is then identical (timings aside) to an uninterrupted run. Training draws no
random numbers (the batch order is a function of seed and epoch), so the RNG states are kept for
completeness. When the run ends, the file holds its outputs instead (`save_final`), until its whole
job has written every output (bnbench.training.job); then it is removed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bnbench.files import atomic_write

FORMAT = 1


def _rng_arrays() -> tuple[dict, dict]:
    """NumPy's and Python's global RNG states as (arrays, JSON-able rest)."""
    numpy_state = np.random.get_state()
    python_version, python_state, python_gauss = random.getstate()
    arrays = {"rng/numpy": numpy_state[1], "rng/python": np.array(python_state, np.uint64)}
    return arrays, {"numpy_rng": [numpy_state[0], *numpy_state[2:]],
                    "python_rng": [python_version, python_gauss]}


def _restore_rng(arrays: dict, meta: dict) -> None:
    name, pos, has_gauss, cached = meta["numpy_rng"]
    np.random.set_state((name, arrays["rng/numpy"], pos, has_gauss, cached))
    version, gauss = meta["python_rng"]
    random.setstate((version, tuple(int(v) for v in arrays["rng/python"]), gauss))


@dataclass
class Checkpoints:
    """The checkpoint file of one run. `identity`: what the run's results depend on (settings, data,
    versions, threads); a checkpoint written under another identity is ignored (the run starts over)."""

    path: Path
    every: int  # epochs between checkpoints; 0 = never
    identity: dict
    log: Callable[[str], None] = print

    def due(self, epoch: int, epochs: int) -> bool:
        """After this epoch? (Not after the last: the outputs follow at once.)"""
        return self.every > 0 and epoch % self.every == 0 and epoch < epochs

    def save(self, trainer, epoch: int, history: list[dict]) -> None:
        rng_arrays, rng_meta = _rng_arrays()
        meta = {"format": FORMAT, "identity": self.identity, "epoch": epoch, "history": history, **rng_meta}
        arrays = {**trainer.state(), **rng_arrays, "meta": np.array(json.dumps(meta))}
        atomic_write(self.path, lambda handle: np.savez(handle, **arrays), mode="wb")
        self.log(f"checkpoint: epoch {epoch} saved to {self.path}")

    def save_final(self, summary: dict, history: list[dict]) -> None:
        """The finished run's outputs, kept here until its whole job has written all of its outputs:
        Snakemake deletes a killed job's outputs before it reruns it; this file is not one of them."""
        meta = {"format": FORMAT, "identity": self.identity, "final": {"summary": summary, "history": history}}
        atomic_write(self.path, lambda handle: np.savez(handle, meta=np.array(json.dumps(meta))), mode="wb")

    def finished(self) -> tuple[dict, list[dict]] | None:
        """(summary, history) of this run when save_final wrote them, else None."""
        arrays, meta = self._read()
        final = meta.get("final") if (meta.get("format"), meta.get("identity")) == (FORMAT, self.identity) else None
        return (final["summary"], final["history"]) if final else None

    def _read(self) -> tuple[dict, dict]:
        """The checkpoint's (arrays, meta); ({}, {}) when there is none, ({}, {"error": ...}) when unreadable."""
        if not self.path.exists():
            return {}, {}
        try:
            with np.load(self.path) as npz:
                arrays = {key: npz[key] for key in npz.files}
            return arrays, json.loads(str(arrays.pop("meta")))
        except Exception as err:  # noqa: BLE001 -- torn, empty or not an npz: any of zipfile's, numpy's errors
            return {}, {"error": err}

    def restore(self, trainer) -> tuple[int, list[dict]]:
        """Load the checkpoint into `trainer`; (epochs already done, their history). (0, []) when
        there is none or it does not belong to this run."""
        arrays, meta = self._read()
        if not meta:
            return 0, []
        if "error" in meta:
            return self._start_over(meta["error"])
        if meta.get("format") != FORMAT or meta.get("identity") != self.identity or "final" in meta:
            self.log(f"checkpoint {self.path} was written for other settings, data or versions; "
                     f"starting the run over")
            return 0, []
        initial = trainer.state()
        try:
            trainer.load_state({k: v for k, v in arrays.items() if not k.startswith(("rng/numpy", "rng/python"))})
            _restore_rng(arrays, meta)
        except Exception as err:  # noqa: BLE001 -- arrays that do not fit this model
            trainer.load_state(initial)
            return self._start_over(err)
        self.log(f"resuming from the checkpoint of epoch {meta['epoch']} ({self.path})")
        return meta["epoch"], meta["history"]

    def _start_over(self, err: Exception) -> tuple[int, list[dict]]:
        self.log(f"checkpoint {self.path} is unreadable ({type(err).__name__}: {err}); starting the run over")
        return 0, []

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
