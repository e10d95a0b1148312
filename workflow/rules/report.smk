# Adaptive seeding (config adaptive): look N reads the claims on the runs so far and plans the seeds it adds;
# Snakemake re-evaluates the DAG after each look (a checkpoint), and the next look waits for those runs.
checkpoint adaptive_look:
    input:
        summaries=lambda wildcards: expand("{run}/summary.json", run=look_run_dirs(int(wildcards.look))),
        previous=lambda wildcards: [] if int(wildcards.look) == 1 else f"results/adaptive/look{int(wildcards.look) - 1}.json",
        claims=CLAIMS,
    output:
        "results/adaptive/look{look}.json",
    params:
        runs=lambda wildcards, input: [os.path.dirname(path) for path in input.summaries],
        config=json.dumps(experiment(config), sort_keys=True),
        code=code("stats"),
    log:
        "logs/adaptive/look{look}.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m bnbench look {params.runs:q} --look {wildcards.look} --claims {input.claims:q} "
        "--previous {input.previous:q} --config {params.config:q} --out {output:q} > {log:q} 2>&1"


# The tables summarise the configured runs; seeds that adaptive seeding adds serve the claims' verdicts only.
rule combine:
    input:
        histories=expand("{run}/history.csv", run=run_dirs()),
        summaries=expand("{run}/summary.json", run=run_dirs()),
    output:
        history="results/history.parquet",
        summary=table("results/summary.csv", "summary", "runs"),
        bn_statistics=table("results/bn_statistics.csv", "bn_statistics", "BN statistics per layer"),
    params:
        runs=run_dirs(),
        code=code("combine"),
    log:
        "logs/combine.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m bnbench combine {params.runs:q} --history {output.history:q} "
        "--summary {output.summary:q} --bn-statistics {output.bn_statistics:q} > {log:q} 2>&1"


rule stats:
    input:
        summary="results/summary.csv",
        bn_statistics="results/bn_statistics.csv",
        claims=CLAIMS,
        sequential=lambda wildcards: final_look() if config["adaptive"] else [],
    output:
        stats=table("results/stats.csv", "stats", "statistics"),
        comparisons=table("results/comparisons.csv", "comparisons", "comparisons"),
        claims=table("results/claims.csv", "claims", "tutorial claims"),
        sensitivity=table("results/sensitivity.csv", "sensitivity", "sensitivity"),
        stability=table("results/stability.csv", "stability", "stability"),
        bn_diagnostics=table("results/bn_diagnostics.csv", "bn_diagnostics", "BN train/inference gap"),
        variance=table("results/variance.csv", "variance", "variance by source"),
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
        "--bn-statistics {input.bn_statistics:q} --bn-diagnostics {output.bn_diagnostics:q} "
        "--variance {output.variance:q} --sequential {input.sequential:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"


rule plots:
    input:
        history="results/history.parquet",
        summary="results/summary.csv",
        comparisons="results/comparisons.csv",
        bn_statistics="results/bn_statistics.csv",
        variance="results/variance.csv",
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
        "--comparisons {input.comparisons:q} --bn-statistics {input.bn_statistics:q} "
        "--variance {input.variance:q} --dataset {wildcards.dataset:q} "
        "--arch {wildcards.arch:q} --outdir {params.outdir:q} --target-ladder {params.ladder:q} > {log:q} 2>&1"


rule report:
    input:
        summary="results/summary.csv",
        stats="results/stats.csv",
        comparisons="results/comparisons.csv",
        claims="results/claims.csv",
        stability="results/stability.csv",
        bn_diagnostics="results/bn_diagnostics.csv",
        variance="results/variance.csv",
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
        "--bn-diagnostics {input.bn_diagnostics:q} --variance {input.variance:q} --figures {input.figures:q} "
        "--config {params.config:q} --out {output:q} > {log:q} 2>&1"
