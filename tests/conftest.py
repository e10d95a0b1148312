import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# Jobs run `python -m bnbench`: the interpreter running the tests must come first on PATH.
SLURM_ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
# Snakemake imports its SLURM executor plugin at every start, and the plugin runs `scontrol show config`
# (10 s time-out). Where SLURM's client is installed but no controller runs (here after
# tests/cluster/slurm-down.sh) every Snakemake call would wait those 10 s. Local runs never use SLURM:
# their PATH has an scontrol that fails at once. tests/test_slurm.py uses SLURM_ENV, the real one.
ENV = {**SLURM_ENV, "PATH": f"{REPO / 'tests/cluster/no-slurm'}{os.pathsep}{SLURM_ENV['PATH']}"}

TINY_CONFIG = {
    "frameworks": ["keras", "torch"],
    "seeds": [1, 2],
    "datasets": {"circles": {"epochs": 3, "variants": ["none", "bn_after"]}},
    "variants": {"none": {"placement": "none"}, "bn_after": {"placement": "after"}},
}


def snakemake(workdir: Path, *args: str, check: bool = True, project: Path = REPO) -> subprocess.CompletedProcess:
    """Run the real Snakemake on this repo's Snakefile (or a copy's, `project`) in `workdir`."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(project / "Snakefile"), "-d", str(workdir), *args]
    proc = subprocess.run(cmd, cwd=workdir, env=ENV, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def project_copy(destination: Path) -> Path:
    """The workflow and package copied to `destination` (no venv, git or outputs), for tests that edit code."""
    import shutil

    destination.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "bnbench", "envs"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination / name)
    return destination


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def circles_npz(tmp_path):
    from bnbench.data import cache, circles

    path = tmp_path / "circles.npz"
    cache.save(path, circles.make())
    return path


def _fashion_mnist_dir() -> Path:
    """The real, MD5-verified Fashion-MNIST files this workplace provides (never committed)."""
    candidates = [os.environ.get("BNBENCH_FASHION_MNIST_DIR"), REPO.parent / "shared/data/fashion-mnist",
                  "/work/shared/data/fashion-mnist"]
    for candidate in filter(None, candidates):
        if (Path(candidate) / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    raise RuntimeError("Fashion-MNIST files not found; set BNBENCH_FASHION_MNIST_DIR to their folder")


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    return _fashion_mnist_dir()


# Largest measured cross-framework difference per parity check (tests/test_parity.py), printed at the end.
PARITY: dict[str, float] = {}


def record_parity(check: str, difference: float) -> None:
    PARITY[check] = max(difference, PARITY.get(check, 0.0))


def pytest_terminal_summary(terminalreporter):
    if PARITY:
        terminalreporter.section("framework parity: largest relative difference per check")
        for check, difference in sorted(PARITY.items()):
            terminalreporter.write_line(f"{difference:9.2e}  {check}")
