import copy
import re

import pytest

from bnbench.config import (UNFILLED_VARIANT_KEYS, ConfigError, load_config, load_schema, resolve_run, runs,
                            validate_config)
from conftest import REPO, TINY_CONFIG, snakemake, write_config


def test_shipped_config_is_valid_and_complete():
    config = load_config(REPO / "config.yaml")
    bn_family = {"none", "bn_after", "bn_before", "bn_no_affine", "bn_momentum0", "bn_input", "bn_before_nobias"}
    beyond = {"renorm_after", "layer_after", "group_after", "weight_norm", "selu", "bn_after_pool"}
    assert set(config["variants"]) == bn_family | beyond
    # the default run trains the BN family (presets/normalizers.yaml the rest)
    assert all(set(dataset["variants"]) == bn_family for dataset in config["datasets"].values())
    every = runs(config)
    base = [run for run in every if run["sweep"] == "base"]
    assert len(base) == 7 * 2 * 10 + 7 * 2 * 5  # circles; Fashion-MNIST mlp3 with 5 seeds
    # circles' sweeps, for none, bn_after and bn_before: 6 further learning rates, 3 batch sizes, 2 init
    # scales, 2 dropout rates (the base value of each is the base run)
    swept = [run for run in every if run["sweep"] not in ("base", "order_seed")]
    assert len(swept) == (6 + 3 + 2 + 2) * 3 * 2 * 10 and {r["dataset"] for r in swept} == {"circles"}
    # variance by source: the 7 circles variants cross 5 initialization x 5 data-order seeds
    crossed = [run for run in every if run["sweep"] == "order_seed"]
    assert len(crossed) == 7 * 2 * 5 * 5 and {(r["seed"], r["sweep_value"]) for r in crossed} == {
        (i, j) for i in range(1, 6) for j in range(1, 6)}
    assert config["adaptive"] is None  # opt-in
    assert {r["variant"] for r in swept} == {"none", "bn_after", "bn_before"}
    assert min(r["sweep_value"] for r in swept if r["sweep"] == "batch_size") == 4
    fashion = resolve_run(config, "fashion_mnist", "mlp3", "bn_before", "keras", 1)
    assert fashion["optimizer"]["nesterov"] is True and fashion["target_accuracy"] == 0.85
    assert fashion["epochs"] >= 15


def test_paper_preset_dry_run_lists_every_job(tmp_path):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    proc = snakemake(tmp_path, "-n", "--configfile", str(REPO / "presets/paper.yaml"))
    train_jobs = [block for block in re.split(r"\nrule ", proc.stdout) if block.startswith("train_")]
    trains = [run for block in train_jobs for run in
              re.findall(r"results/runs/(\w+)/(\w+)/(\w+)/(\w+)/seed(\d+)/history.csv", block.split("output:")[1].split("\n")[0])]
    fashion = {t for t in trains if t[0] == "fashion_mnist"}
    # The LSTM skips the two BN-before variants (no activation outside its cell).
    assert len(fashion) == (3 * 7 - 2) * 2 * 10 and {t[1] for t in fashion} == {"mlp3", "cnn", "lstm"}
    assert not {t for t in fashion if t[1] == "lstm" and t[2] in ("bn_before", "bn_before_nobias")}
    assert len(set(trains)) == (3 * 7 - 2) * 2 * 10 + 7 * 2 * 10  # circles too


def test_sensitivity_preset_dry_run_lists_its_sweeps(tmp_path):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    proc = snakemake(tmp_path, "-n", "--configfile", str(REPO / "presets/sensitivity.yaml"))
    line = next(line for line in proc.stderr.splitlines() if line.startswith("bnbench: "))
    # circles: 7 variants x 2 frameworks x 10 seeds at 1 base + 15 sweep points (6 learning rates, 3 batch
    # sizes, 4 init scales, 2 dropout rates); Fashion-MNIST: 7 x 2 x 5 at 1 + 5 points, 5 seeds per job
    # (no crossed seeds: the preset turns config.yaml's off)
    assert line.startswith(f"bnbench: {7 * 2 * 10 * 16 + 7 * 2 * 5 * 6} runs in {7 * 2 * 16 + 7 * 2 * 6} training jobs")
    assert "crossed" not in line
    for sweep, runs_ in (("learning_rate", 7 * 2 * 10 * 6 + 7 * 2 * 5 * 3), ("init_scale", 7 * 2 * 10 * 4)):
        assert f"sweep {sweep}: {runs_} runs" in line
    assert "fashion_mnist/mlp3/bn_input/torch/learning_rate=0.1/seed5/history.csv" in proc.stdout


def test_every_schema_property_has_description_and_default_where_optional():
    schema = load_schema()  # the file, with the BN defaults bnbench/training/bn.py states

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            sub = schema["$defs"][sub["$ref"].split("/")[-1]] | sub if "$ref" in sub else sub
            assert "description" in sub, f"{path}{name} lacks a description"
            # Absent on purpose: a dataset entry (absent = not run), per-dataset seeds/variants/sweep_variants
            # overrides, and a sweep axis (absent = not swept).
            # A variant's normalizer keys are never filled in (UNFILLED_VARIANT_KEYS); their descriptions say the default.
            optional = (path == "datasets." or path.endswith(".sweeps.")
                        or (name in {"seeds", "variants", "sweep_variants"} and path.startswith("datasets."))
                        or (name in UNFILLED_VARIANT_KEYS and path.endswith("*.")))
            if name in UNFILLED_VARIANT_KEYS and path.endswith("*."):
                assert "default" in sub["description"] or name in ("groups", "pool_placement"), name
            if name not in node.get("required", []) and not optional:
                assert "default" in sub, f"{path}{name} lacks a default"
            walk(sub, f"{path}{name}.")
        if isinstance(node.get("additionalProperties"), dict):
            walk(schema["$defs"]["variant"], f"{path}*.")

    walk(schema, "")


def test_bn_defaults_come_from_bn_settings():
    from bnbench.training.bn import BNSettings

    variant = validate_config({"datasets": {"circles": {}}, "variants": {"v": {"placement": "after"}}})["variants"]["v"]
    assert {key: variant[key] for key in ("momentum", "epsilon", "center", "scale")} == vars(BNSettings())


def test_defaults_are_filled():
    config = validate_config({"datasets": {"circles": {}}})
    assert config["frameworks"] == ["keras", "torch"] and config["seeds"] == list(range(1, 11))
    assert config["datasets"]["circles"]["epochs"] == 100
    assert config["datasets"]["circles"]["optimizer"]["learning_rate"] == 0.01


def test_per_dataset_overrides_select_runs():
    config = validate_config(copy.deepcopy(TINY_CONFIG))
    config["datasets"]["circles"]["seeds"] = [7]
    assert {(r["variant"], r["framework"], r["seed"]) for r in runs(config)} == {
        ("none", "keras", 7), ("none", "torch", 7), ("bn_after", "keras", 7), ("bn_after", "torch", 7)}


BAD_CONFIGS = [
    ({"datasets": {"circles": {}}, "frameworks": ["keras", "jax"]}, "frameworks.1: 'jax' is not one of"),
    ({"datasets": {"circles": {}}, "learning_rate": 3}, "'learning_rate' was unexpected"),
    ({"datasets": {"mnist": {}}}, "'mnist' was unexpected"),
    ({"datasets": {"circles": {"epochs": "ten"}}}, "datasets.circles.epochs: 'ten' is not of type 'integer'"),
    ({"datasets": {"circles": {"epochs": 0}}}, "datasets.circles.epochs: 0 is less than the minimum"),
    ({"datasets": {"circles": {}}, "variants": {"v": {}}}, "variants.v: 'placement' is a required"),
    ({"datasets": {"circles": {}}, "variants": {"v": {"placement": "middle"}}},
     "variants.v.placement: 'middle' is not one of"),
    ({"datasets": {"circles": {}}, "variants": {"v": {"placement": "after", "momentum": 1.5}}},
     "variants.v.momentum: 1.5 is greater than the maximum of 1"),
    ({"datasets": {"circles": {}}, "seeds": [1, 1]}, "seeds: [1, 1] has non-unique elements"),
    ({"datasets": {"circles": {}}, "seeds": [1.5]}, "seeds.0: 1.5 is not of type 'integer'"),
    ({"datasets": {"circles": {"variants": ["zzz"]}}}, "unknown variant(s) zzz"),
    ({"datasets": {"circles": {"batch_size": 600}}}, "batch_size (600) is larger than the training set"),
    ({"datasets": {"circles": {"target_accuracy": 0}}}, "target_accuracy: 0 is less than or equal to"),
    ({}, "'datasets' is a required property"),
    ({"datasets": {"circles": {"archs": ["cnn"]}}}, "datasets.circles.archs.0: 'cnn' is not one of ['mlp']"),
    ({"datasets": {"fashion_mnist": {"archs": ["mlp"]}}}, "datasets.fashion_mnist.archs.0: 'mlp' is not one of"),
    ({"datasets": {"fashion_mnist": {"mirrors": ["ftp://x"]}}}, "datasets.fashion_mnist.mirrors.0: 'ftp://x' is not allowed; match the pattern ^(https?|file)://"),
    ({"datasets": {"fashion_mnist": {"validation_size": 60000}}}, "validation_size: 60000 is greater than the maximum"),
    ({"datasets": {"fashion_mnist": {"train_subset": 16, "batch_size": 32}}},
     "datasets.fashion_mnist.batch_size (32) is larger than the training set (16)"),
]


@pytest.mark.parametrize("config, message", BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_bad_config_is_rejected_with_one_clear_line(config, message):
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("datasets:\n  circles: {epochs: 3\n")
    with pytest.raises(ConfigError, match=r"config.yaml: line \d+: not valid YAML"):
        load_config(path)


def test_snakemake_stops_before_any_job_on_bad_config(tmp_path):
    write_config(tmp_path, {"datasets": {"circles": {"epochs": 0}}})
    proc = snakemake(tmp_path, "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "datasets.circles.epochs: 0 is less than the minimum of 1" in proc.stderr + proc.stdout
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()


def test_job_resources_scale_with_epochs_and_framework():
    from bnbench.config import job_resources

    config = validate_config(copy.deepcopy(TINY_CONFIG))
    short = job_resources(config, "circles", "mlp", "torch")
    config["datasets"]["circles"]["epochs"] = 3000
    long = job_resources(config, "circles", "mlp", "keras")
    assert long["runtime"] > short["runtime"] >= 5 and long["mem_mb"] > short["mem_mb"]
    group = job_resources(config, "circles", "mlp", "keras", runs=10)  # a job of 10 runs
    assert group["runtime"] - 5 >= 10 * (long["runtime"] - 6) and group["mem_mb"] > long["mem_mb"]


def test_runs_per_job_groups_each_variants_seeds_and_regrouping_keeps_every_run():
    from bnbench.config import seed_groups, training_jobs

    config = validate_config({**copy.deepcopy(TINY_CONFIG), "seeds": [7, 3, 5, 1, 9]})
    assert seed_groups(config, "circles") == [[7, 3, 5, 1, 9]]  # circles' default: 10 per job
    assert training_jobs(config) == 4  # 2 variants x 2 frameworks
    config["datasets"]["circles"]["runs_per_job"] = 2
    assert seed_groups(config, "circles") == [[7, 3], [5, 1], [9]]  # config order, remainder last
    assert training_jobs(config) == 12 and len(runs(config)) == 20


def test_changing_runs_per_job_reruns_nothing(tmp_path):
    write_config(tmp_path, TINY_CONFIG)
    snakemake(tmp_path, "--cores", "2")
    write_config(tmp_path, {**TINY_CONFIG, "datasets": {"circles": {**TINY_CONFIG["datasets"]["circles"],
                                                                    "runs_per_job": 1}}})
    proc = snakemake(tmp_path, "--cores", "2", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]
    lost = "results/runs/circles/mlp/none/torch/seed2/summary.json"
    (tmp_path / lost).unlink()
    proc = snakemake(tmp_path, "--cores", "2", "-n", lost)
    assert re.search(r"^train_circles_seed2\s+1$", proc.stdout, re.M), proc.stdout[-3000:]  # that run only


@pytest.mark.parametrize("device, gpu", [("cuda", True), ("auto", False), ("cpu", False)])
def test_slurm_profile_dry_run_works_without_slurm_and_asks_a_gpu_for_cuda(tmp_path, device, gpu):
    """`--profile profiles/slurm -n` needs no SLURM; training jobs carry memory, time and (cuda) a GPU;
    the data and report rules stay local."""
    write_config(tmp_path, {**TINY_CONFIG, "device": device})
    proc = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles/slurm"))
    train_jobs = [block for block in proc.stdout.split("\nrule ")[1:] if block.startswith("train_circles_seeds1_2:")]
    assert len(train_jobs) == 4  # 2 variants x 2 frameworks, both seeds in one job
    for block in train_jobs:
        resources = re.search(r"resources: (.*)", block).group(1)
        assert "mem_mb=" in resources and "runtime=" in resources
        assert ("gpu=1" in resources) == gpu


def test_skip_leaves_out_a_variant_on_one_arch_only():
    config = validate_config({"frameworks": ["torch"], "seeds": [1],
                              "variants": {"none": {"placement": "none"}, "bn_before": {"placement": "before"}},
                              "datasets": {"fashion_mnist": {"archs": ["mlp3", "lstm"],
                                                             "skip": {"lstm": ["bn_before"]}}}})
    assert {(r["arch"], r["variant"]) for r in runs(config)} == {
        ("mlp3", "none"), ("mlp3", "bn_before"), ("lstm", "none")}


@pytest.mark.parametrize("skip, message", [
    ({"cnn": ["none"]}, "datasets.fashion_mnist.skip names arch cnn, which datasets.fashion_mnist.archs does not"),
    ({"lstm": ["zzz"]}, "datasets.fashion_mnist.skip.lstm names unknown variant(s) zzz"),
])
def test_skip_must_name_trained_archs_and_known_variants(skip, message):
    config = {"variants": {"none": {"placement": "none"}},
              "datasets": {"fashion_mnist": {"archs": ["lstm"], "skip": skip}}}
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


def test_a_run_the_config_cannot_make_is_refused_by_name():
    config = validate_config({"variants": {"none": {"placement": "none"}, "bn_before": {"placement": "before"}},
                              "datasets": {"fashion_mnist": {"archs": ["lstm"], "skip": {"lstm": ["bn_before"]}}}})
    with pytest.raises(ConfigError, match="run fashion_mnist/lstm/bn_before: an LSTM's activations"):
        resolve_run(config, "fashion_mnist", "lstm", "bn_before", "torch", 1)
    with pytest.raises(ConfigError, match="the config defines no dataset 'fashion_mnist' or no variant 'zzz'"):
        resolve_run(config, "fashion_mnist", "lstm", "zzz", "torch", 1)


def test_equivalence_margins_given_replace_only_their_metrics():
    config = validate_config({"datasets": {"circles": {}}, "equivalence_margins": {"test_accuracy": 0.02}})
    margins = config["equivalence_margins"]
    assert margins["test_accuracy"] == 0.02 and margins["epochs_to_target"] == 2 and margins["small_batch_drop"] == 0.01


def test_equivalence_margin_names_are_the_metrics_statistics_knows():
    from bnbench.analysis import sensitivity, stats
    from bnbench.config import load_schema

    allowed = load_schema()["properties"]["equivalence_margins"]["propertyNames"]["enum"]
    assert set(allowed) == set(stats.METRICS) | set(sensitivity.STABILITY_METRICS)
    assert set(load_schema()["properties"]["equivalence_margins"]["default"]) <= set(allowed)
