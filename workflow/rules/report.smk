rule combine:
    input:
        histories=expand("{run}/history.csv", run=run_dirs()),
        summaries=expand("{run}/summary.json", run=run_dirs()),
    output:
        history="results/history.parquet",
        summary=table("results/summary.csv", "summary", "runs"),
    params:
        runs=run_dirs(),
        code=code("combine"),
    log:
        "logs/combine.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m bnbench combine {params.runs:q} --history {output.history:q} "
        "--summary {output.summary:q} > {log:q} 2>&1"


rule stats:
    input:
        summary="results/summary.csv",
        claims=CLAIMS,
    output:
        stats=table("results/stats.csv", "stats", "statistics"),
        comparisons=table("results/comparisons.csv", "comparisons", "comparisons"),
        claims=table("results/claims.csv", "claims", "tutorial claims"),
        sensitivity=table("results/sensitivity.csv", "sensitivity", "sensitivity"),
        stability=table("results/stability.csv", "stability", "stability"),
    params:
        code=code("stats"),
        settings=json.dumps(
            {key: config[key] for key in ("equivalence_margins", "min_pairs")}, sort_keys=True
        ),
    log:
        "logs/stats.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m bnbench stats --summary {input.summary:q} --claims {input.claims:q} "
        "--stats {output.stats:q} --comparisons {output.comparisons:q} "
        "--claims-out {output.claims:q} --sensitivity {output.sensitivity:q} --stability {output.stability:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"


rule plots:
    input:
        history="results/history.parquet",
        summary="results/summary.csv",
        comparisons="results/comparisons.csv",
    output:
        **{name: figure(name) for name in FIGURES},
    params:
        outdir=lambda wildcards: f"reports/figures/{wildcards.dataset}/{wildcards.arch}",
        ladder=lambda wildcards: json.dumps(config["datasets"][wildcards.dataset]["target_ladder"]),
        code=code("plots"),
    log:
        "logs/plots/{dataset}/{arch}.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m bnbench plots --history {input.history:q} --summary {input.summary:q} "
        "--comparisons {input.comparisons:q} --dataset {wildcards.dataset:q} "
        "--arch {wildcards.arch:q} --outdir {params.outdir:q} --target-ladder {params.ladder:q} > {log:q} 2>&1"


rule report:
    input:
        summary="results/summary.csv",
        stats="results/stats.csv",
        comparisons="results/comparisons.csv",
        claims="results/claims.csv",
        stability="results/stability.csv",
        figures=figure_paths(),
    output:
        report(
            "reports/index.html",
            caption="../report/index.rst",
            category="Report",
            labels={"report": "bnbench HTML report"},
        ),
    params:
        # The experiment as run; how often checkpoints were written changes no result.
        config=json.dumps(experiment(config), sort_keys=True),
        code=code("report"),
    log:
        "logs/report.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m bnbench report --summary {input.summary:q} --stats {input.stats:q} "
        "--comparisons {input.comparisons:q} --claims {input.claims:q} --stability {input.stability:q} "
        "--figures {input.figures:q} "
        "--config {params.config:q} --out {output:q} > {log:q} 2>&1"
