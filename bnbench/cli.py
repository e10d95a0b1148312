"""`python -m bnbench data|train|combine|stats|plots|report`: the commands the Snakemake rules call.

Framework, plotting and dataframe imports happen inside the verb that needs them, so a torch job never
imports TensorFlow (and vice versa) and no training job pays for plotting imports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bnbench import BnbenchError
from bnbench.files import disk_full


def log(message: str) -> None:
    print(f"[bnbench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}); pass a JSON object, e.g. '{{\"seed\": 1}}'")


def json_object(text: str) -> dict:
    """argparse type of the JSON arguments the workflow passes (--params, --config)."""
    if not isinstance(value := _json(text), dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object; pass one, e.g. '{{\"seed\": 1}}'")
    return value


def json_runs(text: str) -> list[dict]:
    """argparse type of --run: one run's settings as a JSON object, or a JSON list of them."""
    value = _json(text)
    runs = value if isinstance(value, list) else [value]
    if not runs or not all(isinstance(run, dict) for run in runs):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object or a list of them; pass one run's "
                                         f"settings, e.g. '{{\"seed\": 1}}', or a list of runs")
    return runs


def whole_number(minimum: int):
    """argparse type: an integer >= minimum."""
    def parse(text: str) -> int:
        if not text.strip().lstrip("-").isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {minimum}")
        return int(text)
    return parse


def cmd_data(args) -> None:
    from bnbench import data
    from bnbench.data import cache

    if unknown := sorted(set(args.params) - set(data.params(args.dataset))):
        raise BnbenchError(f"--params: {args.dataset} takes no {', '.join(unknown)}; pass the settings "
                           f"bnbench.config.dataset_params gives")
    cache.save(args.out, data.make(args.dataset, args.params))
    log(f"wrote {args.out}")


def cmd_train(args) -> None:
    from bnbench.training.job import run_job

    run_job(args.run, args.data, args.history, args.summary, threads=args.threads,
            checkpoint_paths=args.checkpoint, checkpoint_every=args.checkpoint_every, log=log)


def cmd_combine(args) -> None:
    from bnbench import results

    runs, epochs = results.write_tables(args.runs, args.history, args.summary, args.bn_statistics)
    log(f"combined {runs} runs, {epochs} epochs")


def cmd_stats(args) -> None:
    from bnbench.analysis.tables import write_statistics

    runs = write_statistics(args.summary, args.claims, args.stats, args.comparisons, args.claims_out,
                            margins=args.settings.get("equivalence_margins"), min_pairs=args.settings.get("min_pairs", 5),
                            sensitivity_path=args.sensitivity, stability_path=args.stability,
                            bn_statistics_path=args.bn_statistics, bn_diagnostics_path=args.bn_diagnostics,
                            variance_path=args.variance,
                            sequential_path=next(filter(None, args.sequential), None))
    log(f"statistics of {runs} runs written")


def cmd_look(args) -> None:
    from bnbench.analysis import sequential

    found = sequential.write_plan(args.config, args.runs, args.claims, args.look - 1, args.out,
                                  next(filter(None, args.previous), None))
    decided = sum(bool(row["decided"]) for row in found["claims"])
    log(f"look {found['look']} of {found['looks']}: {len(found['runs'])} runs, {decided} of {len(found['claims'])} "
        f"claim rows decided; " + ("final" if found["final"] else f"adding {len(found['next_runs'])} runs"))


def cmd_plots(args) -> None:
    from bnbench.analysis import plots

    plots.write_figures(args.history, args.summary, args.comparisons, args.dataset, args.arch, args.outdir,
                        args.bn_statistics, args.variance, target_ladder=args.target_ladder)
    log(f"wrote figures for {args.dataset}/{args.arch} into {args.outdir}")


def cmd_report(args) -> None:
    from bnbench.analysis import report

    report.write_report(summary=args.summary, stats=args.stats, comparisons=args.comparisons,
                        claims=args.claims, figures=args.figures, config_json=json.dumps(args.config),
                        out=args.out, stability=args.stability, bn_diagnostics=args.bn_diagnostics,
                        variance=args.variance)
    log(f"wrote {args.out}")


def parser() -> argparse.ArgumentParser:
    from bnbench.data import DATASETS

    p = argparse.ArgumentParser(prog="python -m bnbench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)

    data = sub.add_parser("data", help="generate or fetch a dataset into its npz cache")
    data.add_argument("dataset", choices=list(DATASETS))
    data.add_argument("--params", required=True, type=json_object, help="dataset settings as JSON")
    data.add_argument("--out", required=True)
    data.set_defaults(func=cmd_data)

    train = sub.add_parser("train", help="train runs one after another; write each one's history.csv + summary.json")
    train.add_argument("--run", required=True, type=json_runs,
                       help="resolved run settings as JSON: one object, or a list of runs of one dataset, arch "
                            "and framework")
    train.add_argument("--data", required=True)
    train.add_argument("--history", required=True, nargs="+", help="one path per run, in the order of --run")
    train.add_argument("--summary", required=True, nargs="+", help="one path per run, in the order of --run")
    train.add_argument("--threads", type=whole_number(1), default=1)
    train.add_argument("--checkpoint", nargs="+", help="checkpoint file per run: resumed from if present, "
                                                       "removed when the job is done")
    # argparse applies `type` to a string default too: a bad $BNBENCH_CHECKPOINT_EVERY is reported here.
    train.add_argument("--checkpoint-every", type=whole_number(0), metavar="EPOCHS",
                       default=os.environ.get("BNBENCH_CHECKPOINT_EVERY", "5"),
                       help="epochs between checkpoints (0: never; default: $BNBENCH_CHECKPOINT_EVERY, "
                            "which the workflow sets from config checkpoint_every, else 5)")
    train.set_defaults(func=cmd_train)

    combine = sub.add_parser("combine", help="combine run outputs into tidy tables")
    combine.add_argument("runs", nargs="+", help="run directories")
    combine.add_argument("--history", required=True, help="output parquet (one row per epoch)")
    combine.add_argument("--summary", required=True, help="output csv (one row per run)")
    combine.add_argument("--bn-statistics", required=True, help="output csv (one row per run x BN layer)")
    combine.set_defaults(func=cmd_combine)

    stats = sub.add_parser("stats", help="aggregates, paired comparisons and the tutorial-claims table")
    stats.add_argument("--summary", required=True)
    stats.add_argument("--claims", required=True, help="claims file (workflow/claims.yaml)")
    stats.add_argument("--stats", required=True, help="output: per-group statistics csv")
    stats.add_argument("--comparisons", required=True, help="output: paired comparisons csv")
    stats.add_argument("--claims-out", required=True, help="output: claims table csv")
    stats.add_argument("--sensitivity", required=True, help="output: per sweep point statistics csv")
    stats.add_argument("--stability", required=True, help="output: stability metrics csv")
    stats.add_argument("--bn-statistics", required=True, help="bn_statistics.csv (combine: one row per run x BN layer)")
    stats.add_argument("--bn-diagnostics", required=True, help="output: BN's train/inference gap per cell csv")
    stats.add_argument("--variance", required=True, help="output: variance by source csv (crossed runs)")
    stats.add_argument("--sequential", nargs="*", default=[],
                       help="adaptive seeding: the final look's plan, whose sequential verdicts make claims.csv")
    stats.add_argument("--settings", type=json_object, default={},
                       help='statistics settings as JSON: {"equivalence_margins": {...}, "min_pairs": 5}')
    stats.set_defaults(func=cmd_stats)

    look = sub.add_parser("look", help="adaptive seeding: one look at the claims, and the runs to add next")
    look.add_argument("runs", nargs="+", help="run directories of this look")
    look.add_argument("--look", required=True, type=whole_number(1), help="the look's number (1 = the configured seeds)")
    look.add_argument("--claims", required=True, help="claims file (workflow/claims.yaml)")
    look.add_argument("--previous", nargs="*", default=[], help="the previous look's plan (none for look 1)")
    look.add_argument("--config", required=True, type=json_object, help="the validated config as JSON")
    look.add_argument("--out", required=True, help="output: this look's plan (JSON)")
    look.set_defaults(func=cmd_look)

    plots = sub.add_parser("plots", help="render the figures of one dataset x arch")
    plots.add_argument("--history", required=True)
    plots.add_argument("--summary", required=True)
    plots.add_argument("--comparisons", required=True)
    plots.add_argument("--bn-statistics", required=True, help="bn_statistics.csv")
    plots.add_argument("--variance", required=True, help="variance.csv")
    plots.add_argument("--dataset", required=True)
    plots.add_argument("--arch", required=True)
    plots.add_argument("--outdir", required=True)
    plots.add_argument("--target-ladder", type=json.loads, default=None,
                       help="JSON list of target accuracies, or null to derive them from the baseline")
    plots.set_defaults(func=cmd_plots)

    report = sub.add_parser("report", help="render the self-contained HTML report")
    report.add_argument("--summary", required=True)
    report.add_argument("--stats", required=True)
    report.add_argument("--comparisons", required=True)
    report.add_argument("--claims", required=True, help="claims table csv")
    report.add_argument("--stability", help="stability metrics csv")
    report.add_argument("--bn-diagnostics", help="BN's train/inference gap csv")
    report.add_argument("--variance", help="variance by source csv")
    report.add_argument("--figures", nargs="+", required=True)
    report.add_argument("--config", required=True, type=json_object, help="the resolved config as JSON")
    report.add_argument("--out", required=True)
    report.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except BnbenchError as err:
        print(f"bnbench: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if not (message := disk_full(err)):
            raise
        print(f"bnbench: error: {message}", file=sys.stderr)
        return 2
    return 0
