rule combine:
    input:
        histories=expand("{run}/history.csv", run=run_dirs()),
        summaries=expand("{run}/summary.json", run=run_dirs()),
    output:
        history="results/history.parquet",
        summary=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "runs"},
        ),
    params:
        runs=run_dirs(),
    log:
        "logs/combine.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m bnbench combine {params.runs} --history {output.history} "
        "--summary {output.summary} > {log} 2>&1"


rule plots:
    input:
        history="results/history.parquet",
        summary="results/summary.csv",
    output:
        val_accuracy=report(
            "reports/figures/{dataset}/{arch}/val_accuracy.svg",
            caption="../report/val_accuracy.rst",
            category="Figures",
            subcategory="{dataset} {arch}",
            labels={"dataset": "{dataset}", "arch": "{arch}", "figure": "validation accuracy"},
        ),
        test_accuracy=report(
            "reports/figures/{dataset}/{arch}/test_accuracy.svg",
            caption="../report/test_accuracy.rst",
            category="Figures",
            subcategory="{dataset} {arch}",
            labels={"dataset": "{dataset}", "arch": "{arch}", "figure": "test accuracy"},
        ),
        epochs_to_target=report(
            "reports/figures/{dataset}/{arch}/epochs_to_target.svg",
            caption="../report/epochs_to_target.rst",
            category="Figures",
            subcategory="{dataset} {arch}",
            labels={"dataset": "{dataset}", "arch": "{arch}", "figure": "epochs to target"},
        ),
    log:
        "logs/plots/{dataset}/{arch}.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m bnbench plots --history {input.history} --summary {input.summary} "
        "--dataset {wildcards.dataset} --arch {wildcards.arch} "
        "--outdir reports/figures/{wildcards.dataset}/{wildcards.arch} > {log} 2>&1"


rule report:
    input:
        summary="results/summary.csv",
        figures=figure_paths(),
    output:
        report(
            "reports/index.html",
            caption="../report/index.rst",
            category="Report",
            labels={"report": "bnbench HTML report"},
        ),
    params:
        config=json.dumps(config, sort_keys=True),
    log:
        "logs/report.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m bnbench report --summary {input.summary} --figures {input.figures} "
        "--config {params.config:q} --out {output} > {log} 2>&1"
