"""A real Snakemake run of a tiny config (2 variants x 2 frameworks x 2 seeds x 3 epochs), end to end."""

import json
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from bnbench.results import HISTORY_COLUMNS
from conftest import REPO, TINY_CONFIG, snakemake, write_config

pytestmark = pytest.mark.slow


def first_table(html: str) -> pd.DataFrame:
    """The first <table> of a page as a DataFrame (header row = columns), with the stdlib parser."""

    class Cells(HTMLParser):
        rows, cell, done = [], None, False

        def handle_starttag(self, tag, attrs):
            if tag == "tr" and not self.done:
                self.rows.append([])
            if tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None and not self.done:
                self.rows[-1].append(self.cell.strip())
                self.cell = None
            self.done = self.done or tag == "table"

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Cells()
    parser.rows = []
    parser.feed(html)
    table = pd.DataFrame(parser.rows[1:], columns=parser.rows[0])
    return table.assign(seeds=table.seeds.astype(int))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    write_config(workdir, TINY_CONFIG)
    proc = snakemake(workdir, "--cores", "2")
    return workdir, proc


def test_all_runs_land_in_the_tidy_tables(tiny_run):
    workdir, _ = tiny_run
    summary = pd.read_csv(workdir / "results/summary.csv")
    history = pd.read_parquet(workdir / "results/history.parquet")
    assert len(summary) == 8 and len(history) == 8 * 3
    assert list(history.columns) == HISTORY_COLUMNS
    assert set(summary.variant) == {"none", "bn_after"} and set(summary.framework) == {"keras", "torch"}
    assert set(summary.seed) == {1, 2}
    assert summary["test_accuracy"].between(0, 1).all()
    for run in summary.itertuples():
        run_dir = workdir / f"results/runs/circles/mlp/{run.variant}/{run.framework}/seed{run.seed}"
        assert json.loads((run_dir / "summary.json").read_text())["test_accuracy"] == run.test_accuracy
        assert (workdir / f"logs/train/circles/mlp/{run.variant}/{run.framework}/seed{run.seed}.log").exists()
        bench = workdir / f"benchmarks/train/circles/mlp/{run.variant}/{run.framework}/seed{run.seed}.tsv"
        assert "s\th:m:s" in bench.read_text()


def test_html_report_is_self_contained_with_figures_and_table(tiny_run):
    workdir, _ = tiny_run
    html = (workdir / "reports/index.html").read_text()
    assert len(re.findall(r'<img src="data:image/svg\+xml;base64,', html)) == 3
    assert not re.search(r'<img src="(?!data:)', html) and "<link" not in html and "<script src" not in html
    for figure in ("val_accuracy", "test_accuracy", "epochs_to_target"):
        assert f'id="circles-mlp-{figure}"' in html
    table = first_table(html)
    assert set(zip(table.variant, table.framework)) == {
        ("none", "keras"), ("none", "torch"), ("bn_after", "keras"), ("bn_after", "torch")}
    assert (table.seeds == 2).all()
    summary = pd.read_csv(workdir / "results/summary.csv")
    mean = summary.query("variant == 'none' and framework == 'torch'").test_accuracy.mean()
    row = table[(table.variant == "none") & (table.framework == "torch")].iloc[0]
    assert row["test accuracy, mean [95 % CI]"].startswith(f"{mean:.3f} [")
    for figure in ("val_accuracy", "test_accuracy", "epochs_to_target"):
        assert (workdir / f"reports/figures/circles/mlp/{figure}.svg").read_text().lstrip().startswith("<?xml")


def test_second_run_has_nothing_to_do(tiny_run):
    workdir, _ = tiny_run
    proc = snakemake(workdir, "--cores", "1", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_snakemake_report_works(tiny_run):
    workdir, _ = tiny_run
    snakemake(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text()
    assert "index.html" in html and "val_accuracy.svg" in html and "summary.csv" in html


def test_snakemake_lint_has_no_findings(tmp_path):
    write_config(tmp_path, TINY_CONFIG)
    proc = snakemake(tmp_path, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_conda_envs_pin_the_same_versions_as_requirements():
    pins = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    seen = set()
    for env in (REPO / "envs").glob("*.yaml"):
        for name, version in re.findall(r"^\s+- ([A-Za-z0-9_.-]+)==(\S+)$", env.read_text(), re.M):
            assert pins.get(name) == version, f"{env.name}: {name}=={version} vs requirements {pins.get(name)}"
            seen.add(name)
    assert {"torch", "tensorflow-cpu", "keras", "pandas", "seaborn", "scikit-learn"} <= seen


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    """Every Fashion-MNIST architecture x both frameworks, one epoch on a subset of the real data."""
    from conftest import _fashion_mnist_dir

    workdir = tmp_path_factory.mktemp("fashion")
    config = {
        "frameworks": ["keras", "torch"],
        "seeds": [1],
        "datasets": {"fashion_mnist": {"dir": str(_fashion_mnist_dir()), "validation_size": 500,
                                       "train_subset": 512, "archs": ["mlp3", "cnn", "lstm"], "epochs": 1}},
        "variants": {"bn_before": {"placement": "before", "use_bias": False}},
    }
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2")
    return workdir


def test_fashion_mnist_cache_holds_the_configured_splits(fashion_run):
    import numpy as np

    with np.load(fashion_run / "resources/data/fashion_mnist.npz") as npz:
        shapes = {k: npz[k].shape for k in npz.files}
        assert npz["x_train"].dtype == np.float32 and npz["y_train"].dtype == np.int64
    assert shapes["x_train"] == (512, 28, 28) and shapes["x_val"] == (500, 28, 28)
    assert shapes["x_test"] == (10000, 28, 28) and shapes["y_test"] == (10000,)


def test_every_fashion_architecture_trains_in_both_frameworks(fashion_run):
    summary = pd.read_csv(fashion_run / "results/summary.csv")
    assert set(zip(summary.arch, summary.framework)) == {
        (a, f) for a in ("mlp3", "cnn", "lstm") for f in ("keras", "torch")}
    assert (summary.epochs_trained == 1).all() and not summary.diverged.any()
    # One epoch on 512 images already beats chance (0.1) on the 10 000 test images.
    assert (summary.test_accuracy > 0.2).all(), summary[["arch", "framework", "test_accuracy"]]
    html = (fashion_run / "reports/index.html").read_text()
    for arch in ("mlp3", "cnn", "lstm"):
        assert f'id="fashion_mnist-{arch}-val_accuracy"' in html
        bench = pd.read_csv(fashion_run / f"benchmarks/train/fashion_mnist/{arch}/bn_before/torch/seed1.tsv",
                            sep="\t")
        assert bench.loc[0, "max_rss"] > 0
