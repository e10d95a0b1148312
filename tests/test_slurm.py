"""Cluster submission against a real SLURM: a single-node cluster on this machine (tests/cluster/).

Needs root (the daemons, /etc/slurm). Skipped elsewhere, except where BNBENCH_REQUIRE_SLURM is set (CI).
"""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, SLURM_ENV, TINY_CONFIG, write_config

CLUSTER = REPO / "tests/cluster"
# The local cluster's settings on top of profiles/slurm: faster first status check (MinJobAge 300 s
# stays >= 3x it), no shared-file-system lag, and the tiny run's jobs all at once.
LOCAL_FLAGS = ["--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5", "--jobs", "8"]
SLURM_TIMEOUT = 600  # seconds: the executor waits forever if status queries break, so always bound it


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0:
        if os.environ.get("BNBENCH_REQUIRE_SLURM"):
            raise AssertionError("the SLURM test must run as root (it starts slurmctld and slurmd)")
        pytest.skip("the local SLURM needs root")
    up = subprocess.run(["bash", str(CLUSTER / "slurm-up.sh")], capture_output=True, text=True)
    assert up.returncode == 0, up.stdout + up.stderr
    yield
    subprocess.run(["bash", str(CLUSTER / "slurm-down.sh")], capture_output=True, text=True)


def run_snakemake(workdir, *args):
    """The real Snakemake, killed (SIGKILL) if it outlives SLURM_TIMEOUT."""
    cmd = ["timeout", "-s", "KILL", str(SLURM_TIMEOUT), sys.executable, "-m", "snakemake",
           "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, cwd=workdir, env=SLURM_ENV, capture_output=True, text=True)


def histories(workdir):
    """Every run's history.csv without its timing column."""
    found = {}
    for path in sorted((workdir / "results/runs").rglob("history.csv")):
        lines = path.read_text().splitlines()
        timing = lines[0].split(",").index("epoch_seconds")
        found[path.relative_to(workdir)] = [",".join(c for i, c in enumerate(line.split(",")) if i != timing)
                                            for line in lines]
    return found


def test_training_jobs_run_as_slurm_jobs_and_match_a_local_run(slurm, tmp_path):
    cluster, local = tmp_path / "cluster", tmp_path / "local"
    for workdir in (cluster, local):
        workdir.mkdir()
        write_config(workdir, TINY_CONFIG)
    proc = run_snakemake(cluster, "--profile", str(REPO / "profiles/slurm"), *LOCAL_FLAGS)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    job_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    assert len(job_ids) == 4  # 2 variants x 2 frameworks, each job both seeds; data and reports run locally
    listed = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i %T"],
                            capture_output=True, text=True).stdout
    states = dict(line.split() for line in listed.splitlines())
    assert all(states.get(job) == "COMPLETED" for job in job_ids), listed
    assert len(list((cluster / "logs/slurm/rule_train_circles_seeds1_2").rglob("*.log"))) == 4
    assert (cluster / "reports/index.html").exists()

    assert run_snakemake(local, "--cores", "2").returncode == 0
    assert histories(cluster) == histories(local) and len(histories(local)) == 8


def test_a_failing_slurm_job_fails_the_run_with_its_slurm_state(slurm, tmp_path):
    # A corrupt dataset file: the (local) data rule sees its output present, the training job submitted
    # to SLURM fails reading it.
    write_config(tmp_path, {**TINY_CONFIG, "seeds": [1], "frameworks": ["torch"],
                            "datasets": {"circles": {"epochs": 1, "variants": ["none"]}}})
    (tmp_path / "resources/data").mkdir(parents=True)
    (tmp_path / "resources/data/circles.npz").write_bytes(b"not a NumPy archive")
    proc = run_snakemake(tmp_path, "--profile", str(REPO / "profiles/slurm"), *LOCAL_FLAGS)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-4000:]
    assert re.search(r"SLURM-job '\d+' failed, SLURM status is: 'FAILED'", output), output[-4000:]
