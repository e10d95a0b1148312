import json
import os
import shlex
import sys

shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}; ")

from bnbench.analysis.plots import FIGURES, write_caption_files
from bnbench import sweeps
from bnbench.config import (
    ConfigError,
    dataset_params,
    experiment,
    job_resources,
    resolve_run,
    run_count,
    runs,
    training_groups,
    validate_config,
)
from bnbench.files import disk_full, unwritable
from bnbench.provenance import code_hash
from bnbench.results import run_folder

# One clear line before any job runs, rather than failures hours in.
try:
    validate_config(config, source="config")
except ConfigError as err:
    raise WorkflowError(str(err)) from None
# Every folder the rules write into, so that a read-only or dangling one deeper down is caught too.
OUTPUT_FOLDERS = ["resources/data", "results/runs", "results/adaptive", "reports/figures", "logs/data", "logs/train",
                  "logs/benchmarks/train", "logs/combine", "logs/stats", "logs/plots", "logs/report", "logs/adaptive"]
if problem := unwritable(OUTPUT_FOLDERS):
    raise WorkflowError(f"output folder {problem}")


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    look=r"[1-9]\d*",
    framework="keras|torch",
    seed=r"\d+",
    arch=r"[A-Za-z0-9_]+",
    variant=r"[A-Za-z0-9_]+",


def run_dir(dataset, point, seed):
    """A run's folder (bnbench.results.run_folder) with its dataset, sweep point and seed filled in; arch,
    variant and framework stay wildcards."""
    wildcards = {"arch": "{arch}", "variant": "{variant}", "framework": "{framework}"}
    return run_folder({"dataset": dataset, **wildcards, "sweep": point[0], "sweep_value": point[1], "seed": seed})

# Handed to training jobs through their environment, not as a param: how often checkpoints are
# written changes no result, so changing it must not trigger reruns (params do).
os.environ.update(BNBENCH_CHECKPOINT_EVERY=str(config["checkpoint_every"]))
RUNS = runs(config)
# Before anything expands: how big the config (its sweeps above all) is.
print(f"bnbench: {run_count(config)}", file=sys.stderr)
DATASET_ARCHS = list(dict.fromkeys((r["dataset"], r["arch"]) for r in RUNS))
REPORT_CAPTIONS = os.path.join(workflow.basedir, "workflow", "report")
CLAIMS = os.path.join(workflow.basedir, "workflow", "claims.yaml")  # tutorial claims, as data


def code(rule):
    """A param: the hash of the code `rule` runs (bnbench.provenance), so that a code change reruns
    exactly the jobs whose code changed."""
    return lambda wildcards: code_hash(rule, wildcards.get("dataset", ""))


# Snakemake's --report reads a caption file per output: written from the figure table.
try:
    FIGURE_CAPTIONS = write_caption_files(os.path.abspath(".snakemake/bnbench/captions"))
except OSError as err:
    raise WorkflowError(disk_full(err) or f"cannot write the report captions ({err}); check the working folder") from None


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
    return [run_folder(r) for r in RUNS]


def read_look(look):
    """Adaptive seeding's plan after look `look` (1-based); Snakemake runs the look first when it is missing."""
    with open(checkpoints.adaptive_look.get(look=str(look)).output[0], encoding="utf-8") as handle:
        return json.load(handle)


def look_run_dirs(look):
    """The runs look `look` reads: the configured ones, then each earlier look's with the runs it added."""
    if look == 1:
        return run_dirs()
    plan = read_look(look - 1)
    return [run_folder(r) for r in plan["runs"] + plan["next_runs"]]


def final_look():
    """The plan file of the look that decided to stop (adaptive seeding)."""
    look = 1
    while not read_look(look)["final"]:
        look += 1
    return f"results/adaptive/look{look}.json"


def figure_paths():
    return [
        f"reports/figures/{dataset}/{arch}/{figure}.svg"
        for dataset, arch in DATASET_ARCHS
        for figure in FIGURES
    ]


def resolved(dataset, point, wildcards, seed):
    """A run's resolved settings (bnbench.config.resolve_run); seed None: the settings its seed group shares."""
    run = resolve_run(config, dataset, wildcards.arch, wildcards.variant, wildcards.framework, seed or 0, *point)
    return run if seed is not None else {key: value for key, value in run.items() if key != "seed"}


# The training rules (train.smk): one per dataset, sweep point and seed group (config.training_groups), its
# wildcards arch, variant, framework. A point is (axis, value), ("base", None) for the dataset's own settings,
# or ("order_seed", seed) for a crossed data-order seed.
def group_label(seeds):
    """Names a seed group's log and rule: seed3, or seeds1-10 (first and last seed, in config order)."""
    return f"seed{seeds[0]}" if len(seeds) == 1 else f"seeds{seeds[0]}-{seeds[-1]}"


def rule_name(dataset, point, seeds):
    """train_circles_seeds1_10, train_circles_learning_rate_0p003_seeds1_10 (a rule name is an identifier)."""
    label = "" if point[0] == sweeps.BASE else f"{point[0]}_{sweeps.value_text(point[1])}_"
    label = label.replace(".", "p").replace("-", "m").replace("+", "")
    return f"train_{dataset}_{label}{group_label(seeds).replace('-', '_')}"


def job_file(folder, dataset, point, seeds, suffix):
    """A training job's log or benchmark file: <folder>/<dataset>/<arch>/<variant>/<framework>[/<axis>=<value>]/seeds1-10<suffix>."""
    parts = [folder, dataset, "{arch}", "{variant}", "{framework}", sweeps.point_folder(*point)]
    return os.path.join(*filter(None, parts), f"{group_label(seeds)}{suffix}")


def group_paths(dataset, point, seeds, name):
    return [f"{run_dir(dataset, point, seed)}/{name}" for seed in seeds]


def group_settings(dataset, point):
    return lambda wildcards: json.dumps(resolved(dataset, point, wildcards, seed=None), sort_keys=True)


def group_runs(dataset, point, seeds):
    # The function takes `output`, so Snakemake counts it derived from the outputs and leaves it out of
    # its params-changed check: how seeds are grouped into jobs is no part of a run's identity.
    def runs(wildcards, output):
        return json.dumps([resolved(dataset, point, wildcards, seed) for seed in seeds], sort_keys=True)

    return runs


def group_checkpoints(dataset, point, seeds):
    def checkpoints(wildcards, output):  # derived as well (see group_runs)
        return expand(group_paths(dataset, point, seeds, "checkpoint.npz"), **wildcards)

    return checkpoints


def group_resources(dataset, point, seeds, key):
    batch_size = point[1] if point[0] == "batch_size" else None

    def resource(wildcards):
        return job_resources(config, dataset, wildcards.arch, wildcards.framework, len(seeds), batch_size)[key]

    return resource


def data_settings(wildcards):
    return json.dumps(dataset_params(config, wildcards.dataset), sort_keys=True)


def final_outputs():
    return [
        "results/history.parquet",
        "results/summary.csv",
        "results/stats.csv",
        "results/comparisons.csv",
        "results/claims.csv",
        "results/sensitivity.csv",
        "results/stability.csv",
        "results/bn_statistics.csv",
        "results/bn_diagnostics.csv",
        "results/variance.csv",
        "reports/index.html",
    ]
