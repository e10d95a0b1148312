"""A real Snakemake run of a tiny config (2 variants x 2 frameworks x 2 seeds x 3 epochs), end to end."""

import json
import math
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from bnbench.results import HISTORY_COLUMNS
from conftest import REPO, TINY_CONFIG, snakemake, write_config

pytestmark = pytest.mark.slow


def html_tables(html: str) -> list[pd.DataFrame]:
    """Every <table> of a page as a DataFrame (header row = columns), with the stdlib parser."""

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.tables[-1].append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                self.tables[-1][-1].append(self.cell.strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Cells()
    parser.feed(html)
    return [pd.DataFrame(rows[1:], columns=rows[0]) for rows in parser.tables]


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
    # BN's diagnostics: population statistics for the BN runs only, one row per BN run x layer
    with_bn = summary.variant == "bn_after"
    assert summary.loc[with_bn, "population_test_accuracy"].between(0, 1).all()
    assert summary.loc[~with_bn, "population_test_accuracy"].isna().all()
    layers = pd.read_csv(workdir / "results/bn_statistics.csv")
    assert len(layers) == 4 and set(layers.variant) == {"bn_after"} and (layers.channels == 50).all()
    assert (layers[["last_batch_mean_gap", "population_mean_gap"]] >= 0).all().all()
    for run in summary.itertuples():
        run_dir = workdir / f"results/runs/circles/mlp/{run.variant}/{run.framework}/seed{run.seed}"
        assert json.loads((run_dir / "summary.json").read_text())["test_accuracy"] == run.test_accuracy
        # One job trains both seeds of a variant x framework: one log, each run's lines prefixed.
        log = workdir / f"logs/train/circles/mlp/{run.variant}/{run.framework}/seeds1-2.log"
        assert f"seed{run.seed}: done: test accuracy" in log.read_text()
        bench = workdir / f"logs/benchmarks/train/circles/mlp/{run.variant}/{run.framework}/seeds1-2.tsv"
        assert "s\th:m:s" in bench.read_text()


FIGURES = ("val_accuracy", "train_loss", "test_accuracy", "epochs_to_target", "performance_profile",
           "improvement", "agreement", "target_ladder", "sensitivity_learning_rate", "sensitivity_batch_size",
           "sensitivity_init_scale", "sensitivity_dropout", "stability_map", "bn_gap",
           "variance_by_source")  # the shipped figure table (plots.FIGURES)


def test_shipped_figure_table():
    from bnbench.analysis.plots import FIGURES as TABLE

    assert set(TABLE) == set(FIGURES)
    assert all(figure.caption and figure.category in {"Convergence", "Accuracy", "Frameworks", "Sweeps",
                                                      "BN statistics", "Variance"}
               for figure in TABLE.values())


def test_html_report_is_self_contained_with_figures_and_tables(tiny_run):
    workdir, _ = tiny_run
    html = (workdir / "reports/index.html").read_text()
    assert len(re.findall(r'<img src="data:image/svg\+xml;base64,', html)) == len(FIGURES)
    assert not re.search(r'<img src="(?!data:)', html) and "<link" not in html and "<script src" not in html
    for figure in FIGURES:
        assert f'id="circles-mlp-{figure}"' in html
        assert (workdir / f"reports/figures/circles/mlp/{figure}.svg").read_text().lstrip().startswith("<?xml")
    tables = html_tables(html)
    claims = tables[0]
    assert {"claim", "verdict", "measured [95 % CI]"} <= set(claims.columns)
    assert set(claims.verdict) <= {"holds", "does not hold", "inconclusive", "not run"}
    means = next(t for t in tables if "seeds" in t.columns)
    assert set(zip(means.variant, means.framework)) == {
        ("none", "keras"), ("none", "torch"), ("bn_after", "keras"), ("bn_after", "torch")}
    assert (means.seeds.astype(int) == 2).all()
    summary = pd.read_csv(workdir / "results/summary.csv")
    mean = summary.query("variant == 'none' and framework == 'torch'").test_accuracy.mean()
    row = means[(means.variant == "none") & (means.framework == "torch")].iloc[0]
    assert row["test accuracy, mean [95 % CI]"].startswith(f"{mean:.3f} [")
    versus = next(t for t in tables if "P(better) [95 % CI]" in t.columns)
    assert set(versus.variant) == {"bn_after"}
    for text in ("Summary", "Provenance", "git commit:", "CPU:", "seeds: 1, 2", "torch: 2.13.0"):
        assert text in html


def test_statistics_tables(tiny_run):
    workdir, _ = tiny_run
    stats = pd.read_csv(workdir / "results/stats.csv")
    assert len(stats.groupby(["variant", "framework"])) == 4
    row = stats.query("variant == 'none' and framework == 'keras' and metric == 'test_accuracy'").iloc[0]
    assert row.n_runs == 2 and row.mean_ci_low <= row["mean"] <= row.mean_ci_high
    comparisons = pd.read_csv(workdir / "results/comparisons.csv")
    assert set(comparisons.comparison) == {"variant_vs_baseline", "keras_vs_torch"}
    assert (comparisons.n_pairs == 2).all()
    claims = pd.read_csv(workdir / "results/claims.csv")
    assert set(claims.framework) == {"keras", "torch"} and "circles_none_test_accuracy" in set(claims.id)


def test_second_run_has_nothing_to_do(tiny_run):
    workdir, _ = tiny_run
    proc = snakemake(workdir, "--cores", "1", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    proc = snakemake(workdir, "--cores", "1", "-n", "--config", "checkpoint_every=1")
    assert "Nothing to be done" in proc.stdout + proc.stderr, "checkpoint frequency must not rerun jobs"


def test_snakemake_report_works(tiny_run):
    workdir, _ = tiny_run
    snakemake(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text()
    for name in ("index.html", "val_accuracy.svg", "agreement.svg", "summary.csv", "claims.csv"):
        assert name in html
    for category in ("Data", "Convergence", "Accuracy", "Frameworks"):
        assert category in html


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
        # BN after the activation: the one placement every architecture has (the LSTM's are inside its cell).
        "variants": {"bn_after": {"placement": "after", "use_bias": False}},
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
        bench = pd.read_csv(fashion_run / f"logs/benchmarks/train/fashion_mnist/{arch}/bn_after/torch/seed1.tsv",
                            sep="\t")
        assert bench.loc[0, "max_rss"] > 0


def _chrome():
    """Headless Debian Chromium through chromedriver; skipped where neither is installed, except in CI."""
    import os
    import shutil

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.environ.get("BNBENCH_REQUIRE_BROWSER"):
            raise AssertionError("chromium/chromedriver missing: .ci/run installs them with apt-get")
        pytest.skip("chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1300,2400"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def browser_view(report, screenshot=None) -> tuple[list, list, int]:
    """Open a report in headless Chromium: (images as [alt, complete, width, height], severe console
    errors, rows of the claims table)."""
    driver = _chrome()
    try:
        driver.get(report.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        claims_rows = driver.execute_script("return document.querySelectorAll('table.claims tbody tr').length;")
        if screenshot:
            screenshot.parent.mkdir(exist_ok=True)
            driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    return images, errors, claims_rows


def test_report_renders_in_a_real_browser(tiny_run):
    workdir, _ = tiny_run
    images, errors, claims_rows = browser_view(workdir / "reports/index.html", REPO / "reports" / "screenshot.png")
    assert errors == []
    assert len(images) == len(FIGURES) and all(complete and w > 0 and h > 0 for _, complete, w, h in images), images
    assert claims_rows > 0


@pytest.fixture(scope="module")
def diverging_run(tmp_path_factory):
    """Learning rate 50: with BN after the ReLU the loss is NaN in epoch 1; without BN it stays finite."""
    workdir = tmp_path_factory.mktemp("diverging")
    config = {**TINY_CONFIG, "datasets": {"circles": {"epochs": 4, "variants": ["none", "bn_after"],
                                                      "optimizer": {"learning_rate": 50}}}}
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2")
    return workdir


def test_diverged_runs_stop_early_and_are_recorded(diverging_run):
    summary = pd.read_csv(diverging_run / "results/summary.csv")
    diverged = summary[summary.variant == "bn_after"]
    assert len(summary) == 8 and diverged.diverged.all() and not summary[summary.variant == "none"].diverged.any()
    assert (diverged.diverged_epoch == diverged.epochs_trained).all() and (diverged.epochs_trained < 4).all()
    assert not diverged.reached_target.any() and diverged.test_loss.isna().all()
    for run in diverged.itertuples():
        history = pd.read_csv(diverging_run / f"results/runs/circles/mlp/bn_after/{run.framework}/seed{run.seed}"
                              / "history.csv")
        assert list(history.epoch) == list(range(1, int(run.diverged_epoch) + 1))
        assert not math.isfinite(history.train_loss.iloc[-1])


def test_diverged_runs_are_counted_and_shown_not_dropped(diverging_run):
    stats = pd.read_csv(diverging_run / "results/stats.csv")
    bn = stats[stats.variant == "bn_after"].set_index(["framework", "metric"])
    for framework in ("keras", "torch"):
        assert bn.loc[(framework, "test_accuracy"), ["n_runs", "n", "n_diverged"]].tolist() == [2, 2, 2]
        assert bn.loc[(framework, "test_loss"), ["n_runs", "n"]].tolist() == [2, 0]
        assert bn.loc[(framework, "epochs_to_target"), "fraction_reached"] == 0
    comparisons = pd.read_csv(diverging_run / "results/comparisons.csv")
    paired = comparisons[(comparisons.variant == "bn_after") & (comparisons.metric == "epochs_to_target")]
    assert set(paired.n_pairs) == {2}
    html = (diverging_run / "reports/index.html").read_text()
    assert "4 diverged" in html and "Diverged runs" in html
    table = next(t for t in html_tables(html) if "stopped at epoch" in t.columns)
    assert table.runs.astype(int).sum() == 4 and set(table.variant) == {"bn_after"}


# Two axes, two values each: learning rate 0.003 and 50 (bn_after diverges there) around the base 0.01,
# batch size 16 and the base 32 (no duplicate run).
SWEEP_CONFIG = {**TINY_CONFIG, "datasets": {"circles": {
    "epochs": 3, "variants": ["none", "bn_after"], "sweeps": {"learning_rate": [0.003, 50], "batch_size": [16, 32]}}}}


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    write_config(workdir, SWEEP_CONFIG)
    return workdir, snakemake(workdir, "--cores", "2")


def test_sweep_runs_have_their_own_paths_and_settings(sweep_run):
    workdir, proc = sweep_run
    line = next(line for line in proc.stderr.splitlines() if line.startswith("bnbench: "))
    assert line.startswith("bnbench: 32 runs in 16 training jobs (base settings: 8 runs in 4 jobs, ")
    assert "sweep learning_rate: 16 runs in 8 jobs" in line and "sweep batch_size: 8 runs in 4 jobs" in line
    summary = pd.read_csv(workdir / "results/summary.csv")
    assert len(summary) == 32 and {"sweep", "sweep_value"} <= set(summary.columns)
    assert summary.sweep.value_counts().to_dict() == {"base": 8, "learning_rate": 16, "batch_size": 8}
    assert summary[summary.sweep == "base"].sweep_value.isna().all()
    swept = summary[summary.sweep != "base"]
    assert (swept.sweep + "=" + swept.sweep_value.astype(str)).value_counts().to_dict() == {
        "learning_rate=0.003": 8, "learning_rate=50.0": 8, "batch_size=16.0": 8}
    effective = {"learning_rate": "run.optimizer.learning_rate", "batch_size": "run.batch_size"}
    for run in summary.itertuples():
        row = summary.loc[run.Index]
        if run.sweep == "base":
            assert row["run.optimizer.learning_rate"] == 0.01 and row["run.batch_size"] == 32
            folder = f"results/runs/circles/mlp/{run.variant}/{run.framework}/seed{run.seed}"
        else:
            assert row[effective[run.sweep]] == run.sweep_value
            value = {0.003: "0.003", 50.0: "50", 16.0: "16"}[run.sweep_value]
            folder = f"results/runs/circles/mlp/{run.variant}/{run.framework}/{run.sweep}={value}/seed{run.seed}"
        assert row["run.init_scale"] == 1.0 and row["run.dropout"] == 0.0
        assert json.loads((workdir / folder / "summary.json").read_text())["test_accuracy"] == run.test_accuracy
    # Kept and counted: the runs that diverge at the large learning rate are the point of the sweep.
    large = summary[summary.sweep_value == 50.0]
    assert large[large.variant == "bn_after"].diverged.all()
    # The same seed is the same run in both frameworks at every sweep point.
    calm = summary[summary.sweep_value.fillna(0) != 50.0].fillna({"sweep_value": 0})  # (lr 50: chaos or NaN)
    wide = calm.pivot_table(index=["variant", "sweep", "sweep_value", "seed"], columns="framework",
                            values="train_loss")
    finite = wide.dropna()
    assert len(finite) == 12 and (abs(finite.keras - finite.torch) <= 1e-4 * abs(finite.keras).clip(lower=1)).all()


def test_sensitivity_and_stability_tables(sweep_run):
    workdir, _ = sweep_run
    sensitivity = pd.read_csv(workdir / "results/sensitivity.csv")
    for column in ("dataset", "arch", "variant", "framework", "sweep", "sweep_value", "metric", "n_runs", "n_diverged",
                   "fraction_reached", "mean", "mean_ci_low", "mean_ci_high"):
        assert column in sensitivity.columns
    assert set(sensitivity.metric) >= {"test_accuracy", "best_val_accuracy", "epochs_to_target", "train_test_gap"}
    points = {(a, v) for a, v in zip(sensitivity.sweep, sensitivity.sweep_value)}
    # Each axis' curve: its sweep values and the base value (the base runs), nothing else.
    assert points == {("learning_rate", 0.003), ("learning_rate", 0.01), ("learning_rate", 50.0),
                      ("batch_size", 16.0), ("batch_size", 32.0)}
    assert len(sensitivity) == 2 * 2 * 5 * sensitivity.metric.nunique() and (sensitivity.n_runs == 2).all()
    diverged = sensitivity.query("variant == 'bn_after' and sweep_value == 50 and metric == 'test_accuracy'")
    assert (diverged.n_diverged == 2).all() and (diverged.fraction_reached == 0).all()
    stability = pd.read_csv(workdir / "results/stability.csv").set_index(["variant", "framework"])
    assert len(stability) == 4
    for column in ("max_stable_learning_rate", "init_scale_spread", "dropout_gain", "small_batch_drop"):
        for suffix in ("", "_ci_low", "_ci_high", "_n"):
            assert column + suffix in stability.columns
    assert (stability.max_stable_learning_rate_n == 2).all() and (stability.small_batch_drop_n == 2).all()
    assert stability.init_scale_spread.isna().all() and stability.dropout_gain.isna().all()  # not swept
    assert (stability.loc[("bn_after", "keras"), "unstable_fraction"]) >= 1 / 3  # lr 50 diverged: 1 of 3 points
    claims = pd.read_csv(workdir / "results/claims.csv")
    ids = ["bn_allows_larger_learning_rate", "bn_less_init_sensitive", "bn_reduces_need_for_dropout",
           "bn_stabilizes_training", "bn_hurts_small_batches"]
    for claim_id in ids:
        rows = claims[claims.id == claim_id]
        assert set(rows.framework) == {"keras", "torch"} and set(rows.variant) == {"bn_after", "bn_before"}
        assert rows.verdict.notna().all()
    measured = claims[(claims.id == "bn_hurts_small_batches") & (claims.variant == "bn_after")]
    assert (measured.n_pairs == 2).all() and measured.measured.notna().all()
    assert (claims[claims.id == "bn_less_init_sensitive"].verdict == "not run").all()
    assert (claims[claims.variant == "bn_before"].query("kind == 'stability'").verdict == "not run").all()


def test_sweep_figures_and_what_bn_bought_in_the_report(sweep_run):
    workdir, _ = sweep_run
    html = (workdir / "reports/index.html").read_text()
    assert len(re.findall(r'<img src="data:image/svg\+xml;base64,', html)) == len(FIGURES)
    for figure in ("sensitivity_learning_rate", "sensitivity_batch_size", "stability_map"):
        assert f'id="circles-mlp-{figure}"' in html
    assert "What BN bought" in html and html.count("bn_after / bn_before minus none") == 5
    assert "32 runs (24 of them in sensitivity sweeps)" in html
    tables = html_tables(html)
    stability = next(t for t in tables if "max stable learning rate" in t.columns)
    assert len(stability) == 4
    claims = tables[0]
    assert "bn_after" in set(claims.variant)
    proc = snakemake(workdir, "--cores", "1", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_sweep_report_renders_in_a_real_browser(sweep_run):
    workdir, _ = sweep_run
    images, errors, claims_rows = browser_view(workdir / "reports/index.html")
    assert errors == [] and claims_rows > 20  # the stability claims' rows too
    assert {alt for alt, *_ in images} >= {"sensitivity_learning_rate", "stability_map"}
    assert all(complete and w > 0 and h > 0 for _, complete, w, h in images), images
