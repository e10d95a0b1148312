"""Load and validate config.yaml; resolve one run's full settings (defaults + dataset + variant)."""

from __future__ import annotations

import copy
import math
from itertools import product
from pathlib import Path

import jsonschema
import yaml

from bnbench import PROJECT_ROOT, BnbenchError

SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"
RUN_KEYS = ("dataset", "arch", "variant", "framework", "seed")


class ConfigError(BnbenchError):
    pass


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def load_config(path: str | Path) -> dict:
    """Read a YAML config file and validate it (defaults filled in)."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; pass an existing YAML file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(err, 'problem', err)}); fix the syntax") from None
    return validate_config(config or {}, source=str(path))


def _with_defaults(validator_class):
    """A validator that also fills in each property's schema default (the jsonschema FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    message = error.message
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        message += f"; allowed keys: {', '.join(allowed)}"
    hint = error.schema.get("description", "") if error.absolute_path else ""
    return f"{where}: {message}" + (f" (expected: {hint})" if hint else "")


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate in place, fill defaults, check cross-references; raise ConfigError with one line."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys to values, got {type(config).__name__}")
    errors = sorted(_Validator(load_schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: invalid config at {_describe(errors[0])}{more}")
    _check_references(config, source)
    return config


FASHION_MNIST_TRAIN_IMAGES = 60_000


def training_size(name: str, dataset: dict) -> int:
    """Number of training samples a dataset's settings leave (validation/test excluded)."""
    if name == "circles":
        return dataset["n_train"]
    remaining = FASHION_MNIST_TRAIN_IMAGES - dataset["validation_size"]
    return min(dataset["train_subset"] or remaining, remaining)


def _check_references(config: dict, source: str) -> None:
    for name, dataset in config["datasets"].items():
        unknown = [v for v in dataset.get("variants", []) if v not in config["variants"]]
        if unknown:
            raise ConfigError(
                f"{source}: datasets.{name}.variants names unknown variant(s) {', '.join(unknown)}; "
                f"define them under 'variants' or use one of: {', '.join(config['variants'])}"
            )
        if name == "circles" and dataset["n_train"] >= dataset["n_samples"]:
            raise ConfigError(
                f"{source}: datasets.{name}.n_train ({dataset['n_train']}) must be below n_samples "
                f"({dataset['n_samples']}) so that a test half remains; lower n_train"
            )
        if dataset["batch_size"] > training_size(name, dataset):
            raise ConfigError(
                f"{source}: datasets.{name}.batch_size ({dataset['batch_size']}) is larger than the "
                f"training set ({training_size(name, dataset)}); lower batch_size"
            )


def dataset_seeds(config: dict, dataset: str) -> list[int]:
    return config["datasets"][dataset].get("seeds", config["seeds"])


def dataset_variants(config: dict, dataset: str) -> list[str]:
    return config["datasets"][dataset].get("variants", list(config["variants"]))


def runs(config: dict) -> list[dict]:
    """Every run the config asks for, as dicts of RUN_KEYS."""
    result = []
    for dataset, settings in config["datasets"].items():
        combos = product(settings["archs"], dataset_variants(config, dataset), config["frameworks"],
                         dataset_seeds(config, dataset))
        result += [dict(zip(RUN_KEYS, (dataset, *combo))) for combo in combos]
    return result


def dataset_params(config: dict, dataset: str) -> dict:
    """Settings that define the data itself (what the data rule needs)."""
    training_keys = {"archs", "epochs", "batch_size", "optimizer", "target_accuracy", "seeds", "variants"}
    return {k: v for k, v in config["datasets"][dataset].items() if k not in training_keys}


def resolve_run(config: dict, dataset: str, arch: str, variant: str, framework: str, seed: int) -> dict:
    """The complete, self-contained settings of one run (written into summary.json)."""
    settings = config["datasets"][dataset]
    return {
        "dataset": dataset,
        "arch": arch,
        "variant": variant,
        "framework": framework,
        "seed": int(seed),
        "epochs": settings["epochs"],
        "batch_size": settings["batch_size"],
        "optimizer": dict(settings["optimizer"]),
        "target_accuracy": settings["target_accuracy"],
        "bn": dict(config["variants"][variant]),
        "device": config["device"],
    }


# Expected seconds per epoch on one CPU core (training + the epoch's evaluations), measured with
# `make bench` and the pipeline's benchmark files, for SLURM's time limit; and peak memory per job.
EPOCH_SECONDS = {"mlp": 0.1, "mlp3": 3.0, "cnn": 60.0, "lstm": 30.0}
JOB_MEMORY_MB = {"keras": 2500, "torch": 1500}  # measured peaks: Keras ~1.2 GB, torch ~0.65 GB (mlp3)


def job_resources(config: dict, dataset: str, arch: str, framework: str) -> dict:
    """SLURM resources of one training job: memory (MB) and a time limit (minutes) of 3x the expected
    time plus 5 minutes of start-up and slack."""
    epochs = config["datasets"][dataset]["epochs"]
    return {"mem_mb": JOB_MEMORY_MB[framework],
            "runtime": 5 + math.ceil(3 * epochs * EPOCH_SECONDS[arch] / 60)}
