# bnbench: data -> training (framework x variant x seed) -> combined tables -> figures -> report.
# The science lives in the bnbench package; rules only wire files together.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


# On a cluster only training is submitted: the dataset rule may download (compute nodes are often
# offline), and the table, figure and report rules take seconds.
localrules:
    all,
    dataset,
    combine,
    stats,
    plots,
    report,


rule all:
    default_target: True
    input:
        final_outputs(),
