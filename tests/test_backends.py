"""Each backend trains for real (3 epochs, through the CLI a rule calls) and writes the output contract."""

import csv
import json
import subprocess
import sys

import pytest

from bnbench.config import resolve_run, validate_config
from bnbench.provenance import code_hash
from bnbench.results import HISTORY_COLUMNS, RUN_KEYS
from conftest import ENV, REPO, TINY_CONFIG

SUMMARY_KEYS = {"dataset", "arch", "variant", "framework", "seed", "train_loss", "train_accuracy",
                "val_loss", "val_accuracy", "test_loss", "test_accuracy",
                "epochs_to_target", "seconds_to_target", "epochs_trained", "total_train_seconds",
                "diverged", "diverged_epoch", "run", "provenance"}
PROVENANCE_KEYS = {"host", "cpu", "logical_cores", "device", "threads", "versions", "commit", "code_hash"}


def run_settings(framework, variant="bn_after", epochs=3, seed=1):
    config = json.loads(json.dumps(TINY_CONFIG))
    config["variants"]["bn_before"] = {"placement": "before"}
    config = validate_config(config)
    config["datasets"]["circles"]["epochs"] = epochs
    return resolve_run(config, "circles", "mlp", variant, framework, seed)


def train(tmp_path, circles_npz, run, probe=""):
    """Run `python -m bnbench train` in a fresh interpreter; return (history rows, summary, modules)."""
    out = tmp_path / run["framework"]
    code = (
        "import sys, runpy; sys.argv = ['bnbench'] + sys.argv[1:];"
        "from bnbench.cli import main; rc = main();"
        "print(','.join(m for m in ('tensorflow', 'torch', 'torch._inductor', 'seaborn', 'matplotlib') if m in sys.modules)"
        " + (',deterministic' if 'torch' in sys.modules and sys.modules['torch'].are_deterministic_algorithms_enabled()"
        " else ''));"
        "sys.exit(rc)"
    )
    args = ["train", "--run", json.dumps(run), "--data", str(circles_npz), "--threads", "1",
            "--history", str(out / "history.csv"), "--summary", str(out / "summary.json")]
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    return rows, json.loads((out / "summary.json").read_text()), proc.stdout.strip().split(","), proc.stderr


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_backend_trains_three_epochs_and_writes_the_contract(tmp_path, circles_npz, framework):
    run = run_settings(framework)
    rows, summary, modules, log = train(tmp_path, circles_npz, run)
    assert list(rows[0]) == HISTORY_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {r["framework"] for r in rows} == {framework} and {r["variant"] for r in rows} == {"bn_after"}
    for row in rows:
        assert 0 <= float(row["train_accuracy"]) <= 1 and float(row["train_loss"]) > 0
        for column in ("train_accuracy", "val_accuracy"):  # correct predictions counted as integers:
            correct = float(row[column]) * 500  # an exact fraction of circles' 500 samples per split
            assert abs(correct - round(correct)) < 1e-9, (column, row[column])
        assert float(row["epoch_seconds"]) > 0
    assert SUMMARY_KEYS <= set(summary)
    assert {**summary["run"], **{k: summary[k] for k in RUN_KEYS}} == run  # each key once
    assert not set(summary["run"]) & set(RUN_KEYS) and summary["run"]["target_accuracy"] == run["target_accuracy"]
    assert summary["epochs_trained"] == 3 and summary["diverged"] is False
    assert summary["val_accuracy"] == pytest.approx(float(rows[-1]["val_accuracy"]))
    assert summary["test_accuracy"] == pytest.approx(summary["val_accuracy"])  # circles: val == test
    assert "epoch 3/3" in log  # per-epoch progress in the job log
    provenance = summary["provenance"]
    assert provenance.keys() == PROVENANCE_KEYS and provenance["device"] == "cpu" and "trains on cpu" in log
    assert provenance["threads"] == 1 and provenance["code_hash"] == code_hash("train", "circles")
    assert provenance["cpu"] and provenance["host"] and provenance["versions"][{"keras": "keras", "torch": "torch"}[framework]]
    # Import discipline: a job imports its own framework only and no plotting library (not even the
    # matplotlib Keras would load on its own).
    other = {"keras": "torch", "torch": "tensorflow"}[framework]
    assert other not in modules and "seaborn" not in modules and "matplotlib" not in modules
    if framework == "torch":  # no torch.compile machinery (1.2 s of start-up); deterministic
        assert "torch._inductor" not in modules and "deterministic" in modules


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["none", "bn_after"])
def test_both_frameworks_learn_circles_from_the_same_start(tmp_path, circles_npz, variant):
    """Same initial weights and batches: both learn the problem and end close to each other."""
    run = run_settings("keras", variant=variant, epochs=60)
    results = {}
    for framework in ("keras", "torch"):
        _, summary, _, _ = train(tmp_path, circles_npz, {**run, "framework": framework})
        results[framework] = summary
    assert results["keras"]["test_accuracy"] > 0.75 and results["torch"]["test_accuracy"] > 0.75
    assert abs(results["keras"]["test_accuracy"] - results["torch"]["test_accuracy"]) <= 0.02
    assert results["keras"]["train_loss"] == pytest.approx(results["torch"]["train_loss"], rel=0.05)


@pytest.mark.parametrize("arch", ["mlp3", "cnn", "lstm"])
@pytest.mark.parametrize("variant", [{"placement": "none"}, {"placement": "after"},
                                     {"placement": "before", "input_bn": True, "use_bias": False}])
def test_same_network_in_both_frameworks_at_initialisation(arch, variant):
    """Built from one spec and one set of initial weights, both models compute the same logits."""
    import numpy as np
    import torch

    from bnbench.training import spec
    from bnbench.training.backends import keras as keras_backend, torch as torch_backend

    if spec.unsupported(arch, variant):  # BN before an LSTM: the nearest meaningful variant
        variant = {**variant, "placement": "after"}
    shape = spec.INPUT_SHAPES[arch]
    layers = spec.build_spec(arch, variant, outputs=10)
    weights = spec.initial_weights(layers, shape, seed=2)
    x = np.random.default_rng(1).random((16, *shape)).astype(np.float32)
    keras_model = keras_backend.build_model(layers, shape, weights)
    torch_model = torch_backend.build_model(layers, shape, weights)
    for training in (False, True):
        torch_model.train(training)
        expected = keras_model(x, training=training).numpy()
        np.testing.assert_allclose(torch_model(torch.from_numpy(x)).detach().numpy(), expected,
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_same_run_twice_gives_the_same_history(tmp_path, circles_npz, framework):
    """Deterministic: the same run in two fresh processes writes the same history.csv (timings aside);
    another seed starts from other weights and batches, so its history differs."""
    def history(name, seed):
        run = run_settings(framework, variant="bn_before", epochs=3, seed=seed)
        rows, _, _, _ = train(tmp_path / name, circles_npz, run)
        return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in rows]

    first = history("first", seed=1)
    assert history("again", seed=1) == first
    other = history("other", seed=2)
    assert [row["train_loss"] for row in other] != [row["train_loss"] for row in first]


TIMINGS = {"seconds_to_target", "total_train_seconds", "warmup_seconds", "median_epoch_seconds"}


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_a_job_of_several_runs_trains_each_exactly_as_alone(tmp_path, circles_npz, framework):
    """One process trains seeds 3 and 1 of bn_before (Keras reuses the model and its traced graph), then
    bn_after (another model): each run's history and summary equal that run's trained alone."""
    group = [run_settings(framework, variant, epochs=20, seed=seed)
             for variant, seed in (("bn_before", 3), ("bn_before", 1), ("bn_after", 1))]
    out = [tmp_path / f"group/{i}" for i in range(len(group))]
    proc = subprocess.run([sys.executable, "-m", "bnbench", "train", "--run", json.dumps(group), "--data",
                           str(circles_npz), "--history", *[str(d / "history.csv") for d in out],
                           "--summary", *[str(d / "summary.json") for d in out]],
                          cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "bn_before/seed3: epoch 20/20" in proc.stderr and "bn_after/seed1: done" in proc.stderr
    for run, group_dir in zip(group, out):
        rows, summary, _, _ = train(tmp_path / f"alone-{run['variant']}-{run['seed']}", circles_npz, run)
        with open(group_dir / "history.csv") as handle:
            in_group = list(csv.DictReader(handle))
        assert [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in in_group] == \
            [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]
        grouped = json.loads((group_dir / "summary.json").read_text())
        assert {k: v for k, v in grouped.items() if k not in TIMINGS | {"provenance"}} == \
            {k: v for k, v in summary.items() if k not in TIMINGS | {"provenance"}}
        assert summary["val_accuracy"] > 0.6  # it learned: identical histories are not identical guesses


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_device_cuda_without_a_gpu_fails_with_one_clear_line(tmp_path, circles_npz, framework):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    run = {**run_settings(framework), "device": "cuda"}
    out = tmp_path / framework
    proc = subprocess.run([sys.executable, "-m", "bnbench", "train", "--run", json.dumps(run), "--data",
                           str(circles_npz), "--threads", "1", "--history", str(out / "history.csv"),
                           "--summary", str(out / "summary.json")], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bnbench: error:")]
    assert len(errors) == 1 and "device: cuda" in errors[0] and "set device: auto or cpu" in errors[0]
    assert not out.exists()
