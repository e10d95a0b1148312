"""Where and by what code a result was made: host, CPU, device, versions, git commit, code hashes.

Each training job records its own provenance in summary.json (on a cluster the report job runs
elsewhere). Code hashes let Snakemake rerun exactly the rules whose code changed: every rule carries
the hash of the code it runs as a param (see workflow/rules/common.smk), so editing the training code
reruns training jobs, and editing plots.py reruns only the plots and report jobs.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import platform
import subprocess
from pathlib import Path

from bnbench import PACKAGE_ROOT, PROJECT_ROOT

# What each rule runs: its entry modules (their imports of bnbench modules are followed, at any depth)
# and data folders they read; {dataset} is the job's dataset, so a change to one dataset's module reruns
# that dataset's jobs only. Backends and dataset modules are listed because they are imported by name.
# Left out on purpose: the CLI (argument parsing; a new option must not rerun hours of training) and this
# module (it records where results were made, it does not make them).
RULE_CODE = {
    "dataset": ("bnbench.data.cache", "bnbench.data.{dataset}"),
    "train": ("bnbench.training.job", "bnbench.training.backends.keras", "bnbench.training.backends.torch",
              "bnbench.data.{dataset}"),
    "combine": ("bnbench.results",),
    "stats": ("bnbench.analysis.tables",),
    "plots": ("bnbench.analysis.plots",),
    "report": ("bnbench.analysis.report", "analysis/templates"),
}
NOT_HASHED = {"bnbench.cli", "bnbench.provenance"}


def _module_file(name: str) -> Path | None:
    """The source file of bnbench module `name` (a package's __init__.py); None if there is none."""
    path = PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """The bnbench modules a file imports (anywhere in it, also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "bnbench"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bnbench":
            found.add(node.module)  # `from bnbench.x import y`: y may be a module of its own
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def code_files(entries: tuple[str, ...]) -> list[Path]:
    """Every file the entries' code consists of: each module, the bnbench modules it imports (at any
    depth), the packages' __init__.py on the way, and listed data folders (relative to the package)."""
    files, seen, todo = set(), set(), list(entries)
    while todo:
        name = todo.pop()
        if name in seen or name in NOT_HASHED:
            continue
        seen.add(name)
        if "/" in name:  # a data folder
            files |= {p for p in (PACKAGE_ROOT / name).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
            continue
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        if path := _module_file(name):
            files.add(path)
            todo += sorted(_imports(path))
    return sorted(files)


@functools.cache
def code_hash(rule: str, dataset: str = "") -> str:
    """SHA-256 (first 16 hex digits) over the paths and contents of the code `rule` runs (for `dataset`)."""
    digest = hashlib.sha256()
    for path in code_files(tuple(entry.format(dataset=dataset) for entry in RULE_CODE[rule])):
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cpu_model() -> str:
    """The CPU model as the OS reports it (/proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache  # once per process: a job of several runs runs one state of the code, as code_hash says
def git_commit() -> str:
    """The bnbench checkout's commit, with "+modified" when its tracked bnbench files differ from it;
    "unknown" outside a git checkout (an unpacked release, a node without git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("+modified" if git("status", "--porcelain", "--untracked-files=no", "--", "bnbench")
                         else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def collect(code: str, device: str, threads: int, versions: dict) -> dict:
    """The provenance block of one result (summary.json's `provenance`); `code`: the hash of the code that
    made it (code_hash); `versions`: the framework's."""
    import numpy as np

    from bnbench import __version__

    versions = {"bnbench": __version__, "python": platform.python_version(), "numpy": np.__version__, **versions}
    return {"host": platform.node(), "cpu": cpu_model(), "logical_cores": os.cpu_count(), "device": device,
            "threads": threads, "versions": versions,
            "commit": git_commit(), "code_hash": code}
