# bnbench: data -> training (framework x variant x seed) -> combined tables -> figures -> report.
# The science lives in the bnbench package; rules only wire files together.
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# The bnbench package lives beside the Snakefile: importable here, and in every job's
# `python -m bnbench` whatever the working directory (`snakemake -d elsewhere`).
sys.path.insert(0, workflow.basedir)
from bnbench.config import ConfigError, read_yaml

if os.path.exists("config.yaml"):
    try:  # Snakemake's own YAML error names neither the file nor the line
        read_yaml("config.yaml")
    except ConfigError as err:
        raise WorkflowError(str(err)) from None


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


# On a cluster only training is submitted: the dataset rule may download (compute nodes are often
# offline), and the look, table, figure and report rules take seconds.
localrules:
    all,
    adaptive_look,
    dataset,
    combine,
    stats,
    plots,
    report,


rule all:
    default_target: True
    input:
        final_outputs(),
