"""Speed harness (`make bench`): seconds per epoch of bnbench's trainers against the arithmetic floor
and the tutorials' training loops, in one process, on the pipeline's thread count.

For the Fashion-MNIST `mlp3` BN-before model and the circles `mlp` BN-after model it times
  floor (torch.mm)   the same forward + backward matrix products at batch 32, plain torch.mm
  floor (tf.matmul)  the same products with tf.matmul in one tf.function per epoch (TensorFlow's floor)
  keras fit          the tutorial: model.fit(batch_size=32, shuffle=True) after a default compile
  torch DataLoader   the tutorial: DataLoader(shuffle=True) loop with nn.BatchNorm1d
  bnbench keras / bnbench torch   the trainers exactly as the pipeline runs them
and prints median seconds per epoch (after one warm-up epoch), the ratio to the method's own
framework's floor and the milliseconds per step above it, baseline / trainer, the process's peak RSS
after each method and the test accuracy after the timed epochs (so speed never silently changes
results), with the CPU model. Then, in subprocesses: whole circles training jobs (`python -m bnbench
train`, as a rule runs them) of one run and of a group of 10 runs (wall time / 10), each against one
run's own training + evaluation time, and thread scaling (one 1-thread job, two side by side, one
2-thread job). Writes reports/speed.csv.

    python benchmarks/speed.py [--epochs 3] [--fashion-dir DIR] [--skip-jobs]
    python benchmarks/speed.py --jobs-from .     # per-rule job times of a finished `make run`
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bnbench.config import resolve_run, validate_config  # noqa: E402
from bnbench.provenance import cpu_model  # noqa: E402
from bnbench.training.spec import batch_order  # noqa: E402
from bnbench.training.loop import prepare  # noqa: E402

THREADS = 1  # the training rule's default `threads`
CASES = {  # name: (dataset, arch, variant, timed epochs per --epochs: circles epochs cost milliseconds,
    #         and 3 of them would leave every method at chance accuracy)
    "fashion mlp3 bn_before": ("fashion_mnist", "mlp3", "bn_before", 1),
    "circles mlp bn_after": ("circles", "mlp", "bn_after", 10),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_config(fashion_dir: str | None) -> dict:
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"]["fashion_mnist"]["dir"] = fashion_dir
    return validate_config(config)


def load_data(config: dict, dataset: str) -> dict:
    from bnbench import data
    from bnbench.config import dataset_params

    return data.make(dataset, dataset_params(config, dataset))


def fresh(data: dict) -> dict:
    return {key: value.copy() for key, value in data.items()}


def timed_epochs(train_epoch, epochs: int) -> list[float]:
    """One warm-up epoch (tracing, allocation), then `epochs` timed ones."""
    times = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        train_epoch(epoch + 1)
        times.append(time.perf_counter() - start)
    return times[1:]


# --- the floor -------------------------------------------------------------------------------------

def floor_epoch_seconds(widths: list[int], n_train: int, batch: int, epochs: int) -> list[float]:
    """Forward (x @ W per layer) and backward (grad W = x^T g, grad x = g W^T except for the input)
    matrix products of one epoch, nothing else."""
    import torch

    torch.set_num_threads(THREADS)
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(a, b, generator=gen) for a, b in zip(widths, widths[1:])]
    steps = [(first, min(first + batch, n_train)) for first in range(0, n_train, batch)]
    x = torch.randn(n_train, widths[0], generator=gen)
    grads = [torch.randn(batch, w, generator=gen) for w in widths[1:]]

    def epoch(_):
        for first, last in steps:
            acts = [x[first:last]]
            for w in weights:
                acts.append(acts[-1] @ w)
            for i in reversed(range(len(weights))):
                g = grads[i][: last - first]
                acts[i].T @ g
                if i:
                    g @ weights[i].T
    return timed_epochs(epoch, epochs)


def tf_floor_epoch_seconds(widths: list[int], n_train: int, batch: int, epochs: int) -> list[float]:
    """The same matrix products with tf.matmul in one tf.function per epoch (as bnbench's Keras epoch
    runs): TensorFlow's own floor, which on some CPUs is well above torch.mm's. Each product feeds a
    running sum (one element), or the graph would prune it."""
    import tensorflow as tf

    from bnbench.training.backends import keras as keras_backend  # its TF settings and thread pinning

    keras_backend.configure(THREADS, 0)
    rng = np.random.default_rng(0)
    weights = [tf.constant(rng.standard_normal((a, b), dtype=np.float32)) for a, b in zip(widths, widths[1:])]
    x = tf.constant(rng.standard_normal((n_train, widths[0]), dtype=np.float32))
    grads = [tf.constant(rng.standard_normal((batch, w), dtype=np.float32)) for w in widths[1:]]

    @tf.function
    def epoch(x):
        n, total = tf.shape(x)[0], tf.constant(0.0)
        for first in tf.range(0, n, batch):
            acts = [x[first:tf.minimum(first + batch, n)]]
            rows = tf.shape(acts[0])[0]
            for w in weights:
                acts.append(tf.matmul(acts[-1], w))
            for i in reversed(range(len(weights))):
                g = grads[i][:rows]
                total += tf.matmul(acts[i], g, transpose_a=True)[0, 0]
                if i:
                    total += tf.matmul(g, weights[i], transpose_b=True)[0, 0]
        return total

    return timed_epochs(lambda _: float(epoch(x)), epochs)


# --- tutorial baselines ----------------------------------------------------------------------------

def keras_fit_baseline(run: dict, data: dict, epochs: int) -> tuple[list[float], float]:
    import keras

    from bnbench.training import spec
    from bnbench.training.backends import keras as keras_backend

    keras_backend.configure(THREADS, run["seed"])
    shape, outputs = prepare(run, data)
    layers = spec.build_spec(run["arch"], run["bn"], outputs)
    model = keras_backend.build_model(layers, shape, spec.initial_weights(layers, shape, run["seed"]))
    opt = run["optimizer"]
    loss = (keras.losses.BinaryCrossentropy(from_logits=True) if outputs == 1
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.compile(optimizer=keras.optimizers.SGD(opt["learning_rate"], opt["momentum"], opt["nesterov"]),
                  loss=loss, metrics=["accuracy"] if outputs > 1 else [keras.metrics.BinaryAccuracy(threshold=0)])
    times = timed_epochs(lambda _: model.fit(data["x_train"], data["y_train"], batch_size=run["batch_size"],
                                             epochs=1, shuffle=True, verbose=0), epochs)
    return times, float(model.evaluate(data["x_test"], data["y_test"], batch_size=1024, verbose=0)[1])


def torch_dataloader_baseline(run: dict, data: dict, epochs: int) -> tuple[list[float], float]:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from bnbench.training import bn
    from bnbench.training.backends import torch as torch_backend

    torch_backend.configure(THREADS, run["seed"])
    shape, outputs = prepare(run, data)
    n_in = int(np.prod(shape))
    bn_kwargs = bn.torch_kwargs(bn.BNSettings())  # Keras' defaults (eps 1e-3, momentum 0.99) in torch terms
    if run["arch"] == "mlp3":  # Dense -> BN -> ReLU, as the tutorial writes it with nn.BatchNorm1d
        layers, width = [nn.Flatten()], n_in
        for units in (300, 200, 100):
            layers += [nn.Linear(width, units), nn.BatchNorm1d(units, **bn_kwargs), nn.ReLU()]
            width = units
        model = nn.Sequential(*layers, nn.Linear(width, outputs))
    else:  # circles: Dense -> ReLU -> BN
        model = nn.Sequential(nn.Linear(n_in, 50), nn.ReLU(), nn.BatchNorm1d(50, **bn_kwargs),
                              nn.Linear(50, outputs))
    binary = outputs == 1
    y_train = torch.from_numpy(data["y_train"].astype(np.float32) if binary else data["y_train"])
    loader = DataLoader(TensorDataset(torch.from_numpy(data["x_train"]), y_train),
                        batch_size=run["batch_size"], shuffle=True)
    loss_fn = nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss()
    opt = run["optimizer"]
    optimizer = torch.optim.SGD(model.parameters(), lr=opt["learning_rate"], momentum=opt["momentum"],
                                nesterov=opt["nesterov"])

    def epoch(_):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            logits = model(xb)
            loss_fn(logits[:, 0] if binary else logits, yb).backward()
            optimizer.step()

    times = timed_epochs(epoch, epochs)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data["x_test"]))
    predicted = (logits[:, 0] > 0).numpy() if binary else logits.argmax(1).numpy()
    labels = data["y_test"] > 0.5 if binary else data["y_test"]
    return times, float(np.mean(predicted == labels))


def bnbench_trainer(framework: str, run: dict, data: dict, epochs: int) -> tuple[list[float], float]:
    from bnbench.training import backends
    from bnbench.training.loop import start

    trainer, n_train, _ = start(backends.load(framework), run, data, THREADS, log=lambda message: None)
    times = timed_epochs(lambda epoch: trainer.train_epoch(batch_order(run["seed"], epoch, n_train)), epochs)
    return times, trainer.evaluate("test")[1]


# --- whole jobs in subprocesses ---------------------------------------------------------------------

def job_seconds(run: dict | list[dict], data_path: Path, threads: int, workdir: Path, parallel: int = 1) -> float:
    """Wall time of `parallel` identical `python -m bnbench train` jobs started together (each training
    `run`, or the list of runs one after another, as a group job does)."""
    runs = run if isinstance(run, list) else [run]
    procs = []
    start = time.perf_counter()
    for i in range(parallel):
        out = [workdir / f"{r['framework']}-{threads}-{parallel}-{i}-{r['seed']}" for r in runs]
        cmd = [sys.executable, "-m", "bnbench", "train", "--run", json.dumps(runs), "--data", str(data_path),
               "--threads", str(threads), "--history", *[str(o / "history.csv") for o in out],
               "--summary", *[str(o / "summary.json") for o in out]]
        procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"benchmark job failed:\n{err}")
    return time.perf_counter() - start


def warm_run_seconds(runs: list[dict], data_path: Path) -> float:
    """One run's own training + evaluation time: the median over runs 2.. of a group in this process
    of `fit` alone (its epochs and evaluations: no start-up, no tracing, no reset between runs)."""
    from bnbench.data import cache
    from bnbench.training import backends
    from bnbench.training.loop import Session, fit

    backend = backends.load(runs[0]["framework"])
    session, seconds = Session(backend, cache.load(data_path), THREADS), []
    session.train(runs[0], log=lambda message: None)  # builds the trainer (and traces Keras' graph)
    for run in runs[1:]:
        backend.configure(THREADS, run["seed"])
        session.trainer.start_run(run)
        start = time.perf_counter()
        fit(session.trainer, run, session.n_train, log=lambda message: None)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3,
                        help="timed epochs after one warm-up (default 3; circles times 10x as many)")
    parser.add_argument("--fashion-dir", default=os.environ.get("BNBENCH_FASHION_MNIST_DIR"),
                        help="folder with the four Fashion-MNIST .gz files (default: $BNBENCH_FASHION_MNIST_DIR, "
                             "else the Keras cache or a download)")
    parser.add_argument("--skip-jobs", action="store_true", help="skip the subprocess job and thread-scaling timings")
    parser.add_argument("--case", choices=CASES, action="append", help="time only this case (repeatable)")
    parser.add_argument("--out", default=str(REPO / "reports/speed.csv"))
    parser.add_argument("--jobs-from", metavar="DIR",
                        help="only summarise the training jobs of a finished pipeline run in DIR (its "
                             "logs/benchmarks files): median wall seconds and peak RSS per dataset/arch/framework")
    args = parser.parse_args(argv)
    if args.jobs_from:
        print_table(job_benchmarks(Path(args.jobs_from)))
        return 0

    config = load_config(args.fashion_dir)
    rows, steps = [], {}
    print(f"CPU: {cpu_model()}; {THREADS} thread per trainer, as the training rule runs them", flush=True)
    for case in args.case or CASES:
        dataset, arch, variant, factor = CASES[case]
        data = load_data(config, dataset)
        run = resolve_run(config, dataset, arch, variant, "torch", 1)
        n_train, batch, epochs = len(data["x_train"]), run["batch_size"], args.epochs * factor
        steps[case] = -(-n_train // batch)
        widths = [784, 300, 200, 100, 10] if arch == "mlp3" else [2, 50, 1]
        methods = {
            "floor (torch.mm)": lambda: (floor_epoch_seconds(widths, n_train, batch, epochs), float("nan")),
            "floor (tf.matmul)": lambda: (tf_floor_epoch_seconds(widths, n_train, batch, epochs), float("nan")),
            "keras fit (tutorial)": lambda: keras_fit_baseline(run, fresh(data), epochs),
            "torch DataLoader (tutorial)": lambda: torch_dataloader_baseline(run, fresh(data), epochs),
            "bnbench keras": lambda: bnbench_trainer("keras", run, fresh(data), epochs),
            "bnbench torch": lambda: bnbench_trainer("torch", run, fresh(data), epochs),
        }
        for method, measure in methods.items():
            times, accuracy = measure()
            rows.append({"case": case, "method": method, "seconds_per_epoch": statistics.median(times),
                         "epochs_timed": len(times), "test_accuracy": accuracy, "peak_rss_mb": peak_rss_mb()})
            print(f"  {case:24s} {method:28s} {rows[-1]['seconds_per_epoch']:8.3f} s/epoch", flush=True)
    add_ratios(rows, steps)
    if not args.skip_jobs:
        rows += job_rows(config)
    write(rows, Path(args.out))
    print_table(rows)
    return 0


FLOOR = {"keras": "floor (tf.matmul)", "torch": "floor (torch.mm)"}  # each framework's own floor
BASELINE = {"bnbench keras": "keras fit (tutorial)", "bnbench torch": "torch DataLoader (tutorial)"}


def own_floor(method: str) -> str:
    return FLOOR["keras" if "keras" in method or "tf." in method else "torch"]


def add_ratios(rows: list[dict], steps: dict[str, int]) -> None:
    """x_floor: seconds per epoch over the method's own framework's floor; ms_above_floor: milliseconds
    per step above it (`steps` per epoch of each case)."""
    by = {(r["case"], r["method"]): r["seconds_per_epoch"] for r in rows}
    for row in rows:
        floor = by[(row["case"], own_floor(row["method"]))]
        row["x_floor"] = row["seconds_per_epoch"] / floor
        row["ms_above_floor"] = 1000 * (row["seconds_per_epoch"] - floor) / steps[row["case"]]
        if row["method"] in BASELINE:
            row["baseline_speedup"] = by[(row["case"], BASELINE[row["method"]])] / row["seconds_per_epoch"]


GROUP = 10  # runs in the group job timed against a job of one run


def job_rows(config: dict) -> list[dict]:
    """Whole circles jobs as the pipeline runs them (one run, and a group of GROUP runs: per-run cost
    against one run's own training + evaluation), and thread scaling on the torch mlp3 job."""
    from bnbench.data import cache

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        circles = tmp / "circles.npz"
        cache.save(circles, load_data(config, "circles"))
        for framework in ("torch", "keras"):
            group = [resolve_run(config, "circles", "mlp", "bn_after", framework, seed) for seed in range(1, GROUP + 1)]
            one = statistics.median(job_seconds(group[0], circles, 1, tmp) for _ in range(3))
            per_run = statistics.median(job_seconds(group, circles, 1, tmp) for _ in range(3)) / GROUP
            own = warm_run_seconds(group, circles)
            for method, seconds in ((f"job of 1 run, {framework}", one),
                                    (f"job of {GROUP} runs / {GROUP}, {framework}", per_run),
                                    (f"one run's training + evaluation, {framework}", own)):
                rows.append({"case": "circles job (100 epochs, whole process)", "method": method,
                             "seconds_per_epoch": float("nan"), "job_seconds": seconds,
                             "x_own_run": seconds / own})
                print(f"  circles {method}: {seconds:.2f} s wall ({seconds / own:.2f}x the run's own time)", flush=True)
        fashion = tmp / "fashion.npz"
        cache.save(fashion, load_data(config, "fashion_mnist"))
        run = {**resolve_run(config, "fashion_mnist", "mlp3", "bn_before", "torch", 1), "epochs": 2}
        one = job_seconds(run, fashion, 1, tmp)
        side_by_side = job_seconds(run, fashion, 1, tmp, parallel=2)
        two_threads = job_seconds(run, fashion, 2, tmp)
        for method, seconds, jobs in (("1 job x 1 thread", one, 1), ("2 jobs x 1 thread, side by side", side_by_side, 2),
                                      ("1 job x 2 threads", two_threads, 1)):
            rows.append({"case": "thread scaling (torch mlp3 job, 2 epochs)", "method": method,
                         "seconds_per_epoch": float("nan"), "job_seconds": seconds,
                         "jobs_per_hour": 3600 * jobs / seconds})
            print(f"  scaling {method}: {seconds:.1f} s", flush=True)
    return rows


def job_benchmarks(root: Path) -> list[dict]:
    """Median whole-job wall time and peak RSS per dataset/arch/framework/sweep axis from a pipeline run's
    Snakemake `benchmark:` files (logs/benchmarks/train/<dataset>/<arch>/<variant>/<framework>[/<axis>=<value>]
    /seeds1-10.tsv)."""
    import pandas as pd

    base = root / "logs/benchmarks/train"
    frames = []
    for path in sorted(base.rglob("*.tsv")):
        dataset, arch, _, framework, *point = path.relative_to(base).parts[:-1]
        sweep = point[0].split("=")[0] if point else "base"
        frames.append(pd.read_csv(path, sep="\t").assign(dataset=dataset, arch=arch, framework=framework,
                                                          sweep=sweep))
    if not frames:
        raise SystemExit(f"no benchmark files under {base}; run the pipeline first")
    table = pd.concat(frames).groupby(["dataset", "arch", "sweep", "framework"]).agg(
        jobs=("s", "size"), median_s=("s", "median"), max_s=("s", "max"), median_rss_mb=("max_rss", "median"))
    return [{"case": f"pipeline jobs {dataset} {arch} {sweep} ({int(row.jobs)} jobs)", "method": f"bnbench {framework}",
             "seconds_per_epoch": float("nan"), "job_seconds": row.median_s, "peak_rss_mb": row.median_rss_mb}
            for (dataset, arch, sweep, framework), row in table.iterrows()]


COLUMNS = ["case", "method", "seconds_per_epoch", "x_floor", "ms_above_floor", "baseline_speedup", "test_accuracy",
           "peak_rss_mb", "epochs_timed", "job_seconds", "x_own_run", "jobs_per_hour", "cpu"]


def write(rows: list[dict], path: Path) -> None:
    from bnbench.files import atomic_write

    def dump(handle):
        writer = csv.DictWriter(handle, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    for row in rows:
        row["cpu"] = cpu_model()
    atomic_write(path, dump)


def fmt(value, spec: str) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else format(value, spec)


def print_table(rows: list[dict]) -> None:
    print(f"\nCPU: {cpu_model()}")
    print(f"{'case':52s} {'method':40s} {'s/epoch':>8s} {'x floor':>8s} {'ms/step':>8s} {'vs tutorial':>11s} "
          f"{'test acc':>8s} {'peak RSS':>9s} {'job s':>7s} {'x own':>6s}")
    print(f"{'':52s} {'':40s} {'':>8s} {'(own)':>8s} {'> floor':>8s}")
    for r in rows:
        print(f"{r['case']:52s} {r['method']:40s} {fmt(r.get('seconds_per_epoch'), '8.3f'):>8s} "
              f"{fmt(r.get('x_floor'), '8.2f'):>8s} {fmt(r.get('ms_above_floor'), '8.3f'):>8s} "
              f"{fmt(r.get('baseline_speedup'), '10.1f') + ('x' if r.get('baseline_speedup') else ''):>11s} "
              f"{fmt(r.get('test_accuracy'), '8.4f'):>8s} {fmt(r.get('peak_rss_mb'), '7.0f') + (' MB' if r.get('peak_rss_mb') else ''):>9s} "
              f"{fmt(r.get('job_seconds'), '7.2f'):>7s} {fmt(r.get('x_own_run'), '6.2f'):>6s}")


if __name__ == "__main__":
    sys.exit(main())
