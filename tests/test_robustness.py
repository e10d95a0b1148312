"""The workflow where users' inputs are odd but valid: a checkout and working directory whose paths hold a
space and a quote, a learning rate at which every run diverges, a single seed, and data values that are
HTML in the tables the report is made from."""

import subprocess
import sys

import pandas as pd
import pytest

from bnbench.analysis import plots
from bnbench.analysis.plots import FIGURES
from conftest import ENV, REPO, TINY_CONFIG, project_copy, snakemake, write_config
from test_workflow import html_tables

pytestmark = pytest.mark.slow


def test_whole_workflow_from_paths_with_a_space_and_a_quote(tmp_path):
    project = project_copy(tmp_path / "bn bench's code")
    workdir = tmp_path / "it's a \"run\" folder"
    workdir.mkdir()
    config = {**TINY_CONFIG, "seeds": [1], "datasets": {"circles": {"epochs": 2, "variants": ["none", "bn_after"]}}}
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2", project=project)
    summary = pd.read_csv(workdir / "results/summary.csv")
    assert len(summary) == 4 and (workdir / "reports/index.html").stat().st_size > 0
    html = (workdir / "reports/index.html").read_text()
    means = next(t for t in html_tables(html) if "note" in t.columns)  # one seed: no interval, said so
    assert set(means.note) == {"one run: no interval"} and set(means.seeds) == {"1"}


@pytest.fixture(scope="module")
def all_diverged(tmp_path_factory):
    """Learning rate 1e30: every run's loss is NaN in epoch 1, with and without BN, in both frameworks."""
    workdir = tmp_path_factory.mktemp("all_diverged")
    config = {**TINY_CONFIG, "datasets": {"circles": {"epochs": 3, "variants": ["none", "bn_after"],
                                                      "optimizer": {"learning_rate": 1e30},
                                                      "sweeps": {"learning_rate": [1e30, 2e30]}}}}
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2")
    return workdir


def test_a_cell_where_every_run_diverged_gets_a_complete_report(all_diverged):
    summary = pd.read_csv(all_diverged / "results/summary.csv")
    assert len(summary) == 16 and summary.diverged.all() and summary.train_loss.isna().all()
    for name in FIGURES:
        assert (all_diverged / f"reports/figures/circles/mlp/{name}.svg").stat().st_size > 0, name
    history = pd.read_parquet(all_diverged / "results/history.parquet")
    note = plots.learning_curves(history, ["none", "bn_after"], "train_loss", "training loss")
    assert [t.get_text() for ax in note.axes for t in ax.texts] == [
        f"No training loss to draw: every run diverged before a finite value ({len(history)} rows)"]
    html = (all_diverged / "reports/index.html").read_text()
    means = next(t for t in html_tables(html) if "note" in t.columns)
    assert len(means) == 4 and set(means.note) == {"every run diverged: accuracies are the stopped networks'"}
    assert "16 diverged" in html


HOSTILE = "<script>alert('x')</script>"


def test_report_escapes_every_value_from_the_tables(all_diverged, tmp_path):
    """The report given tables whose variant is HTML (the config's name rule refuses such names; the
    report must not trust its inputs either)."""
    tables = {}
    for name in ("summary", "stats", "comparisons", "claims", "stability"):
        frame = pd.read_csv(all_diverged / f"results/{name}.csv")
        if "variant" in frame:
            frame["variant"] = frame["variant"].replace("bn_after", HOSTILE)
        tables[name] = tmp_path / f"{name}.csv"
        frame.to_csv(tables[name], index=False)
    figures = sorted(str(p) for p in (all_diverged / "reports/figures/circles/mlp").glob("*.svg"))
    out = tmp_path / "index.html"
    proc = subprocess.run([sys.executable, "-m", "bnbench", "report", "--summary", str(tables["summary"]),
                           "--stats", str(tables["stats"]), "--comparisons", str(tables["comparisons"]),
                           "--claims", str(tables["claims"]), "--stability", str(tables["stability"]),
                           "--figures", *figures, "--config", "{}", "--out", str(out)],
                          cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(" in html
