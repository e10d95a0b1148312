"""The seams new work plugs into: the figure table drives every report, code hashes rerun exactly the
rules whose code changed, and every run records where and by what code it was trained."""

import re

import pandas as pd
import pytest

from bnbench import provenance
from bnbench.analysis.report import provenance as report_provenance
from conftest import project_copy, snakemake, write_config

SMALL = {
    "frameworks": ["torch"],
    "seeds": [1, 2],
    "datasets": {"circles": {"epochs": 2, "variants": ["none", "bn_after"]}},
    "variants": {"none": {"placement": "none"}, "bn_after": {"placement": "after"}},
}
NEW_FIGURE = '''

@figure("Accuracy", "Validation against test accuracy of every run, a figure added by the test suite.")
def val_against_test(panel: Panel):
    fig, ax = plt.subplots()
    ax.scatter(panel.summary.val_accuracy, panel.summary.test_accuracy)
    return fig
'''


@pytest.mark.slow
def test_a_figure_added_to_the_table_reaches_every_report(tmp_path):
    project, workdir = project_copy(tmp_path / "project"), tmp_path / "work"
    workdir.mkdir()
    with open(project / "bnbench/analysis/plots.py", "a") as plots:  # the one edit
        plots.write(NEW_FIGURE)
    write_config(workdir, SMALL)
    snakemake(workdir, "--cores", "2", project=project)
    svg = workdir / "reports/figures/circles/mlp/val_against_test.svg"
    assert svg.read_text().lstrip().startswith("<?xml")
    html = (workdir / "reports/index.html").read_text()
    assert 'id="circles-mlp-val_against_test"' in html and "a figure added by the test suite" in html
    snakemake(workdir, "--report", "report.html", project=project)
    report = (workdir / "report.html").read_text()
    assert "val_against_test.svg" in report and "a figure added by the test suite" in report


def jobs_to_run(proc) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table."""
    table = (proc.stdout + proc.stderr).split("Job stats:", 1)
    if len(table) == 1:
        assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        return {}
    rows = re.findall(r"^(\w+)\s+(\d+)$", table[1], re.M)
    return {rule: int(count) for rule, count in rows if rule != "total"}


@pytest.mark.slow
def test_a_code_change_reruns_exactly_the_rules_that_run_that_code(tmp_path):
    project, workdir = project_copy(tmp_path / "project"), tmp_path / "work"
    workdir.mkdir()
    write_config(workdir, SMALL)
    snakemake(workdir, "--cores", "2", project=project)

    def after_editing(path: str) -> dict[str, int]:
        source = project / path
        original = source.read_text()
        source.write_text(original + "\n# an edit\n")
        try:
            return jobs_to_run(snakemake(workdir, "--cores", "1", "-n", project=project))
        finally:
            source.write_text(original)

    # circles' 2 seeds are one job per variant (runs_per_job 10): rule train_circles_seeds1_2, 2 jobs
    assert after_editing("bnbench/training/loop.py") == {
        "train_circles_seeds1_2": 2, "combine": 1, "stats": 1, "plots": 1, "report": 1, "all": 1}
    assert after_editing("bnbench/data/circles.py") == {
        "dataset": 1, "train_circles_seeds1_2": 2, "combine": 1, "stats": 1, "plots": 1, "report": 1, "all": 1}
    assert after_editing("bnbench/data/fashion_mnist.py") == {}  # another dataset's code
    assert after_editing("bnbench/analysis/stats.py") == {"stats": 1, "plots": 1, "report": 1, "all": 1}
    assert after_editing("bnbench/analysis/plots.py") == {"plots": 1, "report": 1, "all": 1}
    assert after_editing("bnbench/analysis/report.py") == {"report": 1, "all": 1}
    assert after_editing("bnbench/cli.py") == {}  # argument parsing decides no result
    assert after_editing("bnbench/provenance.py") == {}  # records where results were made
    assert jobs_to_run(snakemake(workdir, "--cores", "1", "-n", project=project)) == {}


def test_code_hashes_cover_the_code_each_rule_runs():
    def files(rule, dataset="circles"):
        entries = tuple(entry.format(dataset=dataset) for entry in provenance.RULE_CODE[rule])
        return {p.relative_to(provenance.PACKAGE_ROOT).as_posix() for p in provenance.code_files(entries)}

    files = {rule: files(rule) for rule in provenance.RULE_CODE} | {"train fashion": files("train", "fashion_mnist")}
    assert {"training/loop.py", "training/backends/torch.py", "training/backends/keras.py", "training/bn.py",
            "training/job.py", "data/circles.py", "results.py", "analysis/metrics.py"} <= files["train"]
    assert "data/fashion_mnist.py" not in files["train"] and "data/fashion_mnist.py" in files["train fashion"]
    assert provenance.code_hash("train", "circles") != provenance.code_hash("train", "fashion_mnist")
    assert not any(name.startswith("analysis/") and name != "analysis/metrics.py" and name != "analysis/__init__.py"
                   for name in files["train"])
    assert "analysis/plots.py" in files["report"] and "analysis/templates/report.html.j2" in files["report"]
    assert "analysis/plots.py" not in files["stats"] | files["combine"]
    assert all("cli.py" not in names and "provenance.py" not in names for names in files.values())


def test_report_says_when_runs_were_trained_on_different_hosts_and_commits():
    summary = pd.DataFrame({"seed": [1, 2, 3], "provenance.host": ["node1", "node2", "node1"],
                            "provenance.cpu": ["Xeon"] * 3, "provenance.device": ["cpu"] * 3,
                            "provenance.commit": ["abc", "def", "abc"], "provenance.code_hash": ["h"] * 3,
                            "provenance.versions.torch": ["2.13.0"] * 3})
    trained = dict(report_provenance(summary)["trained"])
    assert trained["host"] == "2 hosts: node1 (2 runs), node2 (1 run)"
    assert trained["git commit"] == "2 commits: abc (2 runs), def (1 run)"
    assert trained["CPU"] == "Xeon" and trained["device"] == "cpu"
    assert report_provenance(summary)["versions"] == {"torch": "2.13.0"}


def test_framework_free_stages_import_no_framework():
    """Data, the training plumbing around the backends, analysis and the CLI's shared modules import
    neither TensorFlow nor torch (TF's import alone costs seconds); the Snakefile's imports stay light."""
    import subprocess
    import sys

    from conftest import ENV, REPO

    modules = ["bnbench.cli", "bnbench.config", "bnbench.data", "bnbench.data.cache", "bnbench.files",
               "bnbench.provenance", "bnbench.results", "bnbench.training.spec", "bnbench.training.bn",
               "bnbench.training.reference", "bnbench.training.loop", "bnbench.training.checkpoint",
               "bnbench.training.job", "bnbench.analysis.metrics", "bnbench.analysis.stats",
               "bnbench.analysis.claims", "bnbench.analysis.plots", "bnbench.analysis.report"]
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
            "print(','.join(m for m in ('tensorflow', 'keras', 'torch', 'sklearn', 'seaborn', 'scipy.stats') "
            "if m in sys.modules and type(sys.modules[m]).__name__ != '_LazyModule'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported at module level: {proc.stdout.strip()}"
