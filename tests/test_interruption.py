"""Interruption and concurrency, for real: a Snakemake run killed with SIGKILL mid-training resumes from
its checkpoint and produces the history an uninterrupted run produces; outputs appear only whole; two
runs side by side in separate folders share no writable path and agree."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from bnbench.config import load_config, runs, training_jobs
from bnbench.files import atomic_write, temporary_path
from conftest import ENV, REPO, TINY_CONFIG, snakemake, write_config

pytestmark = pytest.mark.slow

EPOCHS, EVERY, KILL_AFTER = 300, 10, 20  # kill once the checkpoint of epoch >= KILL_AFTER is on disk
SEEDS, KILLED_SEED = [1, 2, 3, 4, 5], 4  # one job trains all five; it is killed during the fourth
RUN = "circles/mlp/bn_after/{framework}/seed1"
TIMINGS = {"seconds_to_target", "total_train_seconds", "warmup_seconds", "median_epoch_seconds"}  # in summary.json


def resume_config(framework: str, seeds=(1,)) -> dict:
    return {"frameworks": [framework], "seeds": list(seeds), "checkpoint_every": EVERY,
            "variants": {"bn_after": {"placement": "after"}},
            "datasets": {"circles": {"epochs": EPOCHS, "variants": ["bn_after"], "runs_per_job": len(seeds)}}}


def without_timings(history_csv) -> list[str]:
    lines = history_csv.read_text().splitlines()
    timing = lines[0].split(",").index("epoch_seconds")
    return [",".join(c for i, c in enumerate(line.split(",")) if i != timing) for line in lines]


def kill_when_checkpointed(workdir, log, prefix="") -> int:
    """Start Snakemake in `workdir`; SIGKILL it and its jobs once `log` shows a checkpoint of an epoch
    >= KILL_AFTER on a line starting with `prefix` (a run of a group job). Returns that epoch."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "1"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pattern = re.compile(rf"\] {re.escape(prefix)}checkpoint: epoch (\d+) saved")
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            saved = [int(e) for e in pattern.findall(log.read_text())] if log.exists() else []
            if saved and max(saved) >= KILL_AFTER:
                family = psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]
                for process in family:
                    process.send_signal(signal.SIGKILL)
                return max(saved)
            time.sleep(0.01)
        raise AssertionError(f"no checkpoint of epoch >= {KILL_AFTER} before the run ended or timed out")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_group_job_killed_in_its_fourth_run_restores_three_resumes_one_and_trains_the_rest(tmp_path, framework):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    for workdir in (killed, whole):
        workdir.mkdir()
        write_config(workdir, resume_config(framework, SEEDS))
    runs_dir = killed / "results/runs/circles/mlp/bn_after" / framework
    log = killed / "logs/train/circles/mlp/bn_after" / framework / f"seeds{SEEDS[0]}-{SEEDS[-1]}.log"

    checkpointed = kill_when_checkpointed(killed, log, prefix=f"seed{KILLED_SEED}: ")
    finished = [seed for seed in SEEDS if (runs_dir / f"seed{seed}/history.csv").exists()]
    assert finished == SEEDS[:SEEDS.index(KILLED_SEED)]
    assert all((runs_dir / f"seed{seed}/checkpoint.npz").exists() for seed in SEEDS[:SEEDS.index(KILLED_SEED) + 1])

    # What a user does after a crash: release the lock the killed Snakemake held, rerun. Snakemake
    # deletes the job's outputs (finished runs' included) before it reruns it.
    snakemake(killed, "--unlock")
    snakemake(killed, "--cores", "1", "--rerun-incomplete")
    text = log.read_text()
    for seed in SEEDS:
        trained = re.findall(rf"\] seed{seed}: epoch (\d+)/", text)
        if seed < KILLED_SEED:  # restored from its record, not retrained
            assert f"seed{seed}: restored: finished before the job was interrupted" in text and not trained
        elif seed == KILLED_SEED:
            resumed = int(re.search(rf"seed{seed}: resuming from the checkpoint of epoch (\d+)", text).group(1))
            assert KILL_AFTER <= checkpointed <= resumed < EPOCHS  # a later checkpoint may land before the kill
            assert int(trained[0]) == resumed + 1 and len(trained) == EPOCHS - resumed
        else:
            assert "resuming" not in text.split(f"seed{seed}: training", 1)[1] and len(trained) == EPOCHS
    print(f"{framework}: killed in run {KILLED_SEED} after the checkpoint of epoch {checkpointed}, resumed "
          f"from epoch {resumed} of {EPOCHS}")
    assert not list(runs_dir.rglob("checkpoint.npz")), "a finished job keeps no checkpoint"

    snakemake(whole, "--cores", "1")
    for seed in SEEDS:
        run_dir, reference = runs_dir / f"seed{seed}", whole / "results/runs" / RUN.format(framework=framework).replace("seed1", f"seed{seed}")
        assert without_timings(run_dir / "history.csv") == without_timings(reference / "history.csv")
        assert len(without_timings(reference / "history.csv")) == EPOCHS + 1
        summaries = [json.loads((d / "summary.json").read_text()) for d in (run_dir, reference)]
        assert [{k: v for k, v in s.items() if k not in TIMINGS} for s in summaries][0] == \
            {k: v for k, v in summaries[1].items() if k not in TIMINGS}


def fit_in_process(run: dict, npz, checkpoints=None) -> tuple[dict, list[str]]:
    """`run` trained on the data in `npz` in this process, as a job trains it (bnbench.training.loop.train);
    returns (outcome, messages logged by training and the checkpoints)."""
    from bnbench.data import cache
    from bnbench.training import backends
    from bnbench.training.loop import train

    messages = []
    if checkpoints:
        checkpoints.log = messages.append
    outcome = train(backends.load(run["framework"]), run, cache.load(npz), log=messages.append, checkpoints=checkpoints)
    return outcome, messages


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "epoch_seconds"} for record in history]


def trained(framework: str, npz, epochs: int, checkpoints=None, settings=None):
    """fit() of a circles bn_after run in this process; returns (outcome, messages logged, run)."""
    from bnbench.config import resolve_run, validate_config

    config = validate_config(resume_config(framework))
    run = {**resolve_run(config, "circles", "mlp", "bn_after", framework, 1), "epochs": epochs, **(settings or {})}
    return (*fit_in_process(run, npz, checkpoints), run)


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_checkpoint_restores_the_exact_state_and_only_for_its_own_run(tmp_path, circles_npz, framework):
    from bnbench.training.checkpoint import Checkpoints

    path = tmp_path / "checkpoint.npz"
    whole, _, run = trained(framework, circles_npz, 5, Checkpoints(path, 2, {"run": "A"}))
    assert path.exists()  # of epoch 4 (fit keeps it; the train command removes it after the outputs)

    resumed, messages, _ = trained(framework, circles_npz, 5, Checkpoints(path, 2, {"run": "A"}))
    assert any("resuming from the checkpoint of epoch 4" in m for m in messages)
    assert [m for m in messages if m.startswith("epoch ")] == [m for m in messages if m.startswith("epoch 5/")]
    assert without_seconds(resumed["history"]) == without_seconds(whole["history"])
    assert resumed["test_loss"] == whole["test_loss"]

    fresh, messages, _ = trained(framework, circles_npz, 5, Checkpoints(path, 2, {"run": "B"}))
    assert any("written for other settings, data or versions; starting the run over" in m for m in messages)
    assert len([m for m in messages if m.startswith("epoch ")]) == 5

    # Arrays that do not fit the model (same identity, other network): the trainer is put back as built.
    trained(framework, circles_npz, 5, Checkpoints(path, 2, {"run": "A"}))
    no_bn = {"bn": {"placement": "none"}}
    mismatched, messages, _ = trained(framework, circles_npz, 5, Checkpoints(path, 2, {"run": "A"}), no_bn)
    assert any("is unreadable" in m and "starting the run over" in m for m in messages), messages
    assert mismatched["history"][-1]["val_loss"] == trained(framework, circles_npz, 5, None, no_bn)[0]["history"][-1]["val_loss"]

    for torn in (b"torn", b"", path.read_bytes()[:200]):  # not a zip, empty, cut short
        path.write_bytes(torn)
        _, messages, _ = trained(framework, circles_npz, 5, Checkpoints(path, 2, {"run": "A"}))
        assert any("is unreadable" in m and "starting the run over" in m for m in messages), messages


@pytest.fixture
def images_npz(tmp_path):
    """96 random 28x28 'images' of 10 classes: enough for a few steps of every Fashion-MNIST arch."""
    import numpy as np

    from bnbench.data import cache

    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.random((n, 28, 28), dtype=np.float32) for s, n in (("train", 96), ("val", 32), ("test", 32))}
    arrays.update({f"y_{s}": rng.integers(0, 10, n) for s, n in (("train", 96), ("val", 32), ("test", 32))})
    path = tmp_path / "images.npz"
    cache.save(path, arrays)
    return path


@pytest.mark.parametrize("framework", ["keras", "torch"])
@pytest.mark.parametrize("arch, bn", [
    ("cnn", {"placement": "before", "center": False, "scale": False}),  # BatchNorm2d, no affine parameters
    ("lstm", {"placement": "after", "input_bn": True, "scale": False}),  # LSTM state, sequence BN, frozen gamma
    ("mlp3", {"placement": "before", "use_bias": False, "momentum": 0.0}),
])
def test_every_architecture_resumes_to_the_same_history(tmp_path, images_npz, framework, arch, bn):
    from bnbench.training.checkpoint import Checkpoints

    run = {"arch": arch, "bn": bn, "seed": 4, "epochs": 3, "batch_size": 32, "framework": framework,
           "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": True}}
    whole, _ = fit_in_process(run, images_npz)
    path = tmp_path / "checkpoint.npz"
    fit_in_process(run, images_npz, Checkpoints(path, 1, {"run": 1}))  # leaves the checkpoint of epoch 2
    resumed, messages = fit_in_process(run, images_npz, Checkpoints(path, 1, {"run": 1}))
    assert any("resuming from the checkpoint of epoch 2" in m for m in messages), messages
    assert without_seconds(resumed["history"]) == without_seconds(whole["history"])
    assert resumed["test_loss"] == whole["test_loss"]


def test_atomic_write_shows_the_file_only_whole(tmp_path):
    path = tmp_path / "out.csv"

    def write(handle):
        handle.write("a,b\n")
        assert not path.exists() and temporary_path(path).exists()

    atomic_write(path, write)
    assert path.read_text() == "a,b\n" and not temporary_path(path).exists()

    def fail(handle):
        handle.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "failed.csv", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_keras_ignores_and_never_writes_the_users_keras_config(tmp_path):
    home = tmp_path / "home"
    (home / ".keras").mkdir(parents=True)
    user_config = '{"floatx": "float64", "epsilon": 0.1, "image_data_format": "channels_first"}'
    (home / ".keras/keras.json").write_text(user_config)
    code = ("from bnbench.training.backends import keras as k; import keras; "
            "print(keras.config.floatx(), keras.config.epsilon(), keras.config.image_data_format())")
    for _ in range(2):  # with the user's file, then with no ~/.keras at all
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**ENV, "HOME": str(home)},
                              capture_output=True, text=True, check=True)
        assert proc.stdout.split() == ["float32", "1e-07", "channels_last"]
        shutil.rmtree(home / ".keras", ignore_errors=True)
    assert list(home.iterdir()) == []


def dry_run_jobs(workdir) -> list[tuple[str, list[str]]]:
    """(rule, paths the job writes) for every job of a dry run: outputs, log, benchmark, checkpoint."""
    proc = snakemake(workdir, "-n", "--printshellcmds")
    jobs = []
    for block in re.split(r"\n(?:local)?rule ", proc.stdout)[1:]:
        rule = block.split(":", 1)[0]
        paths = []
        for field in ("output", "log", "benchmark"):
            match = re.search(rf"^\s+{field}: (.*)$", block, re.MULTILINE)
            paths += match.group(1).split(", ") if match else []
        paths += [path for found in re.findall(r"--checkpoint (.*?) >", block) for path in found.split()]
        jobs.append((rule, paths))
    return jobs


def test_no_two_jobs_write_the_same_path_and_only_the_dataset_rule_writes_resources(tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    jobs = dry_run_jobs(tmp_path)
    written = [path for _, paths in jobs for path in paths]
    config = load_config(tmp_path / "config.yaml")
    n_runs = len(runs(config))
    assert sum(rule.startswith("train") for rule, _ in jobs) == training_jobs(config) < n_runs
    assert len(written) > 3 * n_runs
    assert len(written) == len(set(written)), "two jobs share a writable path"
    assert {rule for rule, paths in jobs for path in paths if path.startswith("resources/")} == {"dataset"}


def test_two_runs_side_by_side_in_separate_folders_agree(tmp_path):
    workdirs = [tmp_path / "a", tmp_path / "b"]
    procs = []
    for workdir in workdirs:
        workdir.mkdir()
        write_config(workdir, TINY_CONFIG)
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2"]
        procs.append(subprocess.Popen(cmd, cwd=workdir, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    for proc in procs:
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, output[-3000:]
    runs = sorted(p.relative_to(workdirs[0]) for p in (workdirs[0] / "results/runs").rglob("history.csv"))
    assert len(runs) == 8
    for run in runs:
        assert without_timings(workdirs[0] / run) == without_timings(workdirs[1] / run)
        summaries = [json.loads((w / run).with_name("summary.json").read_text()) for w in workdirs]
        assert [{k: v for k, v in s.items() if k not in TIMINGS} for s in summaries][0] == \
            {k: v for k, v in summaries[1].items() if k not in TIMINGS}
    for workdir in workdirs:
        assert (workdir / "reports/index.html").exists()
        assert not list(workdir.rglob("*.tmp")) and not list(workdir.rglob("checkpoint.npz"))
