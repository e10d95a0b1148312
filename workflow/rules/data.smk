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
        "python -m bnbench data {wildcards.dataset:q} --params {params.settings:q} "
        "--out {output:q} > {log:q} 2>&1"
