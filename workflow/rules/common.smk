import json
import os
import shlex
import sys

shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}; ")

from bnbench.analysis.plots import FIGURES, write_caption_files
from bnbench.config import ConfigError, dataset_params, job_resources, resolve_run, runs, validate_config
from bnbench.files import unwritable
from bnbench.provenance import code_hash

# One clear line before any job runs, rather than failures hours in.
try:
    validate_config(config, source="config")
except ConfigError as err:
    raise WorkflowError(str(err)) from None
OUTPUT_FOLDERS = ["resources", "results", "logs", "reports"]
if problem := unwritable(OUTPUT_FOLDERS):
    raise WorkflowError(
        f"output folder {problem}; run from a folder you can write to, or point snakemake at one with "
        f"-d/--directory"
    )


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    framework="keras|torch",
    seed=r"\d+",
    arch=r"[A-Za-z0-9_]+",
    variant=r"[A-Za-z0-9_]+",


RUN_DIR = "results/runs/{dataset}/{arch}/{variant}/{framework}/seed{seed}"
# Handed to training jobs through their environment, not as a param: how often checkpoints are
# written changes no result, so changing it must not trigger reruns (params do).
os.environ.update(BNBENCH_CHECKPOINT_EVERY=str(config["checkpoint_every"]))
RUNS = runs(config)
DATASET_ARCHS = list(dict.fromkeys((r["dataset"], r["arch"]) for r in RUNS))
REPORT_CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")
CLAIMS = os.path.join(workflow.basedir, "workflow", "claims.yaml")  # tutorial claims, as data


def code(rule):
    """A param: the hash of the code `rule` runs (bnbench.provenance), so that a code change reruns
    exactly the jobs whose code changed."""
    return lambda wildcards: code_hash(rule, wildcards.get("dataset", ""))


# Snakemake's --report reads a caption file per output: written from the figure table.
FIGURE_CAPTIONS = write_caption_files(os.path.abspath(".snakemake/bnbench/captions"))


def figure(name):
    """A figure output of the plots rule, registered for Snakemake's report."""
    return report(
        f"reports/figures/{{dataset}}/{{arch}}/{name}.svg",
        caption=FIGURE_CAPTIONS[name],
        category=FIGURES[name].category,
        subcategory="{dataset} {arch}",
        labels={"dataset": "{dataset}", "arch": "{arch}", "figure": name.replace("_", " ")},
    )


def table(path, caption, label):
    """A results table, registered for Snakemake's report under Data."""
    return report(
        path,
        caption=os.path.join(REPORT_CAPTIONS, f"{caption}.rst"),
        category="Data",
        labels={"table": label},
    )


def run_dirs():
    return [RUN_DIR.format(**r) for r in RUNS]


def figure_paths():
    return [
        f"reports/figures/{dataset}/{arch}/{figure}.svg"
        for dataset, arch in DATASET_ARCHS
        for figure in FIGURES
    ]


def run_settings(wildcards):
    """The run's resolved settings as JSON (a param, so a config change reruns the job)."""
    return json.dumps(
        resolve_run(
            config,
            wildcards.dataset,
            wildcards.arch,
            wildcards.variant,
            wildcards.framework,
            int(wildcards.seed),
        ),
        sort_keys=True,
    )


def data_settings(wildcards):
    return json.dumps(dataset_params(config, wildcards.dataset), sort_keys=True)


def final_outputs():
    return [
        "results/history.parquet",
        "results/summary.csv",
        "results/stats.csv",
        "results/comparisons.csv",
        "results/claims.csv",
        "reports/index.html",
    ]
