# Training: one rule per dataset, sweep point and group of its seeds (config runs_per_job). A job trains
# the group's seeds of one arch x variant x framework at one sweep point one after another in one process,
# so the framework's start-up is paid once per job; each run still has its own tracked outputs in its own
# folder (a sweep point's runs in <framework>/<axis>=<value>/seed<n>).
for dataset in config["datasets"]:
    for point, seeds in training_groups(config, dataset):

        rule:
            name:
                rule_name(dataset, point, seeds)
            input:
                f"resources/data/{dataset}.npz",
            output:
                history=group_paths(dataset, point, seeds, "history.csv"),
                summary=group_paths(dataset, point, seeds, "summary.json"),
            params:
                # What the runs' results depend on besides their seeds (compared by Snakemake's params
                # trigger: a config change reruns the job; a regrouping does not).
                settings=group_settings(dataset, point),
                code=code("train"),
                runs=group_runs(dataset, point, seeds),
                # Not outputs: Snakemake must not delete them when a killed job is rerun.
                checkpoints=group_checkpoints(dataset, point, seeds),
            log:
                job_file("logs/train", dataset, point, seeds, ".log"),
            benchmark:
                job_file("logs/benchmarks/train", dataset, point, seeds, ".tsv")
            threads: 1
            resources:
                # SLURM's memory and time limit per job, scaled from config and the group's size; a GPU
                # when device is cuda.
                mem_mb=group_resources(dataset, point, seeds, "mem_mb"),
                runtime=group_resources(dataset, point, seeds, "runtime"),
                **({"gpu": 1} if config["device"] == "cuda" else {}),
            conda:
                "../../envs/train.yaml"
            shell:
                "python -m bnbench train --run {params.runs:q} --data {input:q} --threads {threads} "
                "--history {output.history:q} --summary {output.summary:q} "
                "--checkpoint {params.checkpoints:q} > {log:q} 2>&1"
