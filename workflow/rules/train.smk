# Training: one rule per dataset and group of its seeds (config runs_per_job). A job trains the
# group's seeds of one arch x variant x framework one after another in one process, so the framework's
# start-up is paid once per job; each run still has its own tracked outputs in its own folder.


def train_rule(dataset, seeds):
    """The training rule of `dataset`'s seed group `seeds` (its wildcards: arch, variant, framework)."""
    group = f"seed{seeds[0]}" if len(seeds) == 1 else f"seeds{seeds[0]}-{seeds[-1]}"

    def paths(name):
        return [f"{run_dir(dataset, seed)}/{name}" for seed in seeds]

    def runs(wildcards, output):
        # Takes `output`, so Snakemake counts it derived from the outputs and leaves it out of its
        # params-changed check: how seeds are grouped into jobs is no part of a run's identity.
        return json.dumps([resolved(dataset, wildcards, seed) for seed in seeds], sort_keys=True)

    def checkpoints(wildcards, output):  # derived as well (see runs)
        return expand(paths("checkpoint.npz"), **wildcards)

    def resources(wildcards):
        return job_resources(config, dataset, wildcards.arch, wildcards.framework, len(seeds))

    rule:
        name:
            f"train_{dataset}_{group.replace('-', '_')}"
        input:
            f"resources/data/{dataset}.npz",
        output:
            history=paths("history.csv"),
            summary=paths("summary.json"),
        params:
            # What the runs' results depend on besides their seeds (compared by Snakemake's params
            # trigger: a config change reruns the job; a regrouping does not).
            settings=lambda wildcards: json.dumps(resolved(dataset, wildcards, seed=None), sort_keys=True),
            code=code("train"),
            runs=runs,
            # Not outputs: Snakemake must not delete them when a killed job is rerun (bnbench.training.job).
            checkpoints=checkpoints,
        log:
            f"logs/train/{dataset}/{{arch}}/{{variant}}/{{framework}}/{group}.log",
        benchmark:
            f"logs/benchmarks/train/{dataset}/{{arch}}/{{variant}}/{{framework}}/{group}.tsv"
        threads: 1
        resources:
            # SLURM's memory and time limit per job, scaled from config and the group's size; a GPU
            # when device is cuda.
            mem_mb=lambda wildcards: resources(wildcards)["mem_mb"],
            runtime=lambda wildcards: resources(wildcards)["runtime"],
            **({"gpu": 1} if config["device"] == "cuda" else {}),
        conda:
            "../../envs/train.yaml"
        shell:
            "python -m bnbench train --run {params.runs:q} --data {input:q} --threads {threads} "
            "--history {output.history:q} --summary {output.summary:q} --checkpoint {params.checkpoints:q} "
            "> {log:q} 2>&1"


for dataset in config["datasets"]:
    for seeds in seed_groups(config, dataset):
        train_rule(dataset, seeds)
