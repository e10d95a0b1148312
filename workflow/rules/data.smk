rule dataset:
    output:
        "resources/data/{dataset}.npz",
    params:
        settings=data_settings,
        code=code("dataset"),
    log:
        "logs/data/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m bnbench data {wildcards.dataset} --params {params.settings:q} "
        "--out {output} > {log} 2>&1"
