rule train:
    input:
        "resources/data/{dataset}.npz",
    output:
        history=f"{RUN_DIR}/history.csv",
        summary=f"{RUN_DIR}/summary.json",
    params:
        run=run_settings,
        code=code("train"),
        # Not an output: Snakemake must not delete it when a killed job is rerun.
        checkpoint=f"{RUN_DIR}/checkpoint.npz",
    log:
        "logs/train/{dataset}/{arch}/{variant}/{framework}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{arch}/{variant}/{framework}/seed{seed}.tsv"
    threads: 1
    resources:
        # SLURM's memory and time limit per job, scaled from config; a GPU when device is cuda.
        mem_mb=lambda wc: job_resources(config, wc.dataset, wc.arch, wc.framework)["mem_mb"],
        runtime=lambda wc: job_resources(config, wc.dataset, wc.arch, wc.framework)["runtime"],
        **({"gpu": 1} if config["device"] == "cuda" else {}),
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m bnbench train --run {params.run:q} --data {input} --threads {threads} "
        "--history {output.history} --summary {output.summary} --checkpoint {params.checkpoint} "
        "> {log} 2>&1"
