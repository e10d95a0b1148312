"""Load and validate config.yaml; resolve one run's full settings (defaults + dataset + variant)."""

from __future__ import annotations

import copy
import math
import re
from dataclasses import asdict
from itertools import product
from pathlib import Path

import jsonschema
import yaml

from bnbench import PROJECT_ROOT, BnbenchError, data, sweeps
from bnbench.results import RUN_KEYS
from bnbench.training.bn import BATCH_STATISTICS, BNSettings, RenormSettings
from bnbench.training.spec import unsupported

SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(BnbenchError):
    pass


def load_schema() -> dict:
    """The config schema, with the BN settings' defaults filled in from BNSettings (stated there only)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    for key, value in asdict(BNSettings()).items():
        schema["$defs"]["variant"]["properties"][key]["default"] = value
    return schema


# A config is a few hundred values; YAML aliases can make a few hundred bytes expand to billions.
YAML_VALUE_LIMIT = 100_000


# YAML 1.1 (PyYAML) reads 010 as octal 8 and 1:30 as base-60 90: numbers nobody means in a config.
_SURPRISING_INT = re.compile(r"[-+]?(0[0-7_]+|[1-9][0-9_]*(:[0-5]?[0-9])+)\Z")
TOO_DEEP = "nested too deeply (hundreds of levels); flatten the config"


def _yaml_tree_problem(root: yaml.Node | None) -> str | None:
    """A duplicate key (YAML lets the last one win, silently), a number YAML 1.1 reads as another one, or
    more than YAML_VALUE_LIMIT values (from aliases or written out), checked in one walk of the composed
    node graph before anything is expanded: an aliased node is one object there, so this takes time in the
    size of the file, not of its expansion."""
    expanded: dict[int, int] = {}
    found = []  # the first duplicate key or surprising number
    aliased = False

    def size(node: yaml.Node) -> int:
        nonlocal aliased
        if id(node) in expanded:
            if expanded[id(node)] < 0:
                raise ValueError("an alias refers to the node that holds it (an infinite value)")
            aliased = True
            return expanded[id(node)]
        expanded[id(node)] = -1
        total = 1
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "tag:yaml.org,2002:int" and node.style is None and _SURPRISING_INT.match(node.value):
                found.append(f"line {node.start_mark.line + 1}: {node.value} is read by YAML as "
                             f"{'an octal' if ':' not in node.value else 'a base-60'} number; write it in decimal "
                             f"without a leading 0 or colon")
        elif isinstance(node, yaml.MappingNode):
            seen = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in seen:
                        found.append(f"line {key.start_mark.line + 1}: key {key.value!r} is given twice (first on "
                                     f"line {seen[key.tag, key.value]}); YAML would keep only the last; remove one")
                    seen.setdefault((key.tag, key.value), key.start_mark.line + 1)
                total += size(key) + size(value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        expanded[id(node)] = min(total, YAML_VALUE_LIMIT + 1)
        return expanded[id(node)]

    if root is None:
        return None
    try:
        if size(root) > YAML_VALUE_LIMIT:
            if not aliased:
                return (f"it holds more than {YAML_VALUE_LIMIT:,} values (a config holds a few hundred); "
                        f"shorten the lists")
            return (f"its aliases (*name) expand to more than {YAML_VALUE_LIMIT:,} values; write the values out "
                    f"or use fewer aliases")
    except ValueError as err:
        return f"{err}; remove the alias"
    except RecursionError:
        return TOO_DEEP
    return found[0] if found else None


def read_yaml(path: str | Path):
    """Parse a YAML file; a missing file, a syntax error, a duplicate key or an alias bomb becomes one
    line naming the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if problem := _yaml_tree_problem(yaml.compose(text, Loader=yaml.SafeLoader)):
            raise ConfigError(f"{path}: {problem}")
        return yaml.safe_load(text)
    except RecursionError:  # (compose itself recurses per level of nesting)
        raise ConfigError(f"{path}: {TOO_DEEP}") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; pass an existing YAML file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); save the file as UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror}); pass a readable YAML file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(err, 'problem', err)}); fix the syntax") from None


def load_config(path: str | Path) -> dict:
    """Read a YAML config file and validate it (defaults filled in)."""
    return validate_config(read_yaml(path) or {}, source=str(path))


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


def _strict_types(validator_class):
    """JSON Schema counts 2.0 as an integer and NaN or infinity as numbers; bnbench does not: a float
    where a whole number is meant fails later (a seed, an epoch count), and NaN passes every bound."""
    def is_integer(_, instance) -> bool:
        return isinstance(instance, int) and not isinstance(instance, bool)

    def is_number(_, instance) -> bool:
        return is_integer(_, instance) or (isinstance(instance, float) and math.isfinite(instance))

    checker = validator_class.TYPE_CHECKER.redefine_many({"integer": is_integer, "number": is_number})
    return jsonschema.validators.extend(validator_class, type_checker=checker)


_Validator = _with_defaults(_strict_types(jsonschema.Draft202012Validator))


_TYPE_NAMES = {"integer": "a whole number", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def _fix(error: jsonschema.ValidationError) -> str:
    """What to change, for each kind of schema violation."""
    kind, value = error.validator, error.validator_value
    if kind == "enum":
        return "use one of: " + ", ".join(map(str, value))
    if kind == "type":
        kinds = [value] if isinstance(value, str) else value
        instance = error.instance
        if isinstance(instance, float) and not math.isfinite(instance) and "number" in kinds:
            return "use a finite number"
        if isinstance(instance, float) and instance.is_integer() and "integer" in kinds:
            return f"write it as a whole number, without a decimal point ({int(instance)}, not {instance})"
        if isinstance(instance, str) and "string" not in kinds and (scientific := _SCIENTIFIC.fullmatch(instance)):
            if "number" not in kinds:
                return "write a whole number without an exponent"
            mantissa, sign, exponent = scientific.groups()
            written = f"{mantissa}{'' if '.' in mantissa else '.0'}e{sign or '+'}{exponent}"
            return f"YAML reads {instance} as text (it needs a dot and a signed exponent): write {written}"
        if isinstance(instance, str) and "string" not in kinds and _FINITE_NUMBER.fullmatch(instance.strip()):
            return f"remove the quotes around {instance.strip()} (a quoted number is text)"
        if (isinstance(instance, bool) or instance is None) and "string" in kinds:
            return ("YAML reads yes/no/on/off/true/false as a boolean and ~/null/an empty value as nothing; put the "
                    "name in quotes, e.g. 'on'")
        return "use " + " or ".join(_TYPE_NAMES.get(k, k) for k in kinds)
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    if kind in bounds:
        return f"use a value {bounds[kind]} {value}"
    if kind == "required":
        return "add the missing key"
    if kind == "additionalProperties":
        return "allowed keys: " + ", ".join(sorted(error.schema.get("properties", {})))
    if kind == "uniqueItems":
        return "remove the duplicates"
    if kind in ("minItems", "minProperties"):
        return f"give at least {value}"
    if kind == "pattern":
        rule = error.schema.get("description")
        return f"use {rule[0].lower()}{rule[1:]}" if rule else f"match the pattern {value}"
    return "see workflow/schemas/config.schema.yaml"


# A number in scientific notation that YAML 1.1 reads as text (1e-3, 1E5: no dot or no exponent sign).
_SCIENTIFIC = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+))[eE]([-+]?)(\d+)")
_FINITE_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "pattern":  # the rule in words (_fix), not the regular expression
        return f"{where}: {error.instance!r} is not allowed; {_fix(error)}"
    hint = error.schema.get("description", "") if error.absolute_path else ""
    return f"{where}: {error.message}; {_fix(error)}" + (f" (expected: {hint})" if hint else "")


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate in place, fill defaults, check cross-references; raise ConfigError with one line."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys to values, got {type(config).__name__}")
    variants = config.get("variants")
    given = {name: set(v) for name, v in variants.items() if isinstance(v, dict)} if isinstance(variants, dict) else {}
    schema = load_schema()
    margins = config.get("equivalence_margins")
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: invalid config at {_describe(errors[0])}{more}")
    if isinstance(margins, dict):  # a margin given replaces that metric's default, not the whole table
        config["equivalence_margins"] = {**schema["properties"]["equivalence_margins"]["default"], **margins}
    _check_consistency(config, source, given)
    return config


BASELINE = "none"  # the variant every other is compared with: no normalization
BN_KEYS = tuple(asdict(BNSettings()))  # settings of a BN layer: center, scale, momentum, epsilon
RENORM_KEYS = tuple(asdict(RenormSettings()))  # rmax, rmin, dmax, renorm_momentum
# The settings each norm has (every other normalization setting given with it is refused).
NORM_SETTINGS = {"batch": BN_KEYS, "renorm": BN_KEYS + RENORM_KEYS, "layer": ("epsilon", "center", "scale"),
                 "group": ("epsilon", "center", "scale", "groups"), "weight": ()}
NORM_ONLY_KEYS = ("norm", "groups", *RENORM_KEYS, "pool_placement")  # meaningless without a normalization
# Variant keys the schema gives no default to fill in: a run's settings (and so Snakemake's params) keep only
# what its variant sets, so the runs of variants that do not use them stay as they were; the code applies
# the defaults (bn.py, spec.py), and whether a key was given is what the checks below ask.
UNFILLED_VARIANT_KEYS = (*NORM_ONLY_KEYS, "activation")


def has_bn(variant: dict) -> bool:
    """Does the variant normalize at all (a normalization layer, or weight-normalized kernels)?"""
    return variant.get("placement", "none") != "none" or variant.get("input_bn", False)


def uses_batch_statistics(variant: dict) -> bool:
    """Does it normalise with statistics over the mini-batch (BN, batch renorm)?"""
    return has_bn(variant) and variant.get("norm", "batch") in BATCH_STATISTICS


def variant_problem(variant: dict, given: set) -> str | None:
    """What makes a variant's settings meaningless, with the fix, or None. `given`: the keys it set itself."""
    if not has_bn(variant):
        stray = [k for k in (*BN_KEYS, *NORM_ONLY_KEYS) if k in given]
        return (f"sets {', '.join(stray)} but has no normalization (placement none, no input_bn), so they would "
                f"be ignored; remove them or set placement / input_bn") if stray else None
    norm = variant.get("norm", "batch")
    stray = [k for k in (*BN_KEYS, *RENORM_KEYS, "groups") if k in given and k not in NORM_SETTINGS[norm]]
    if stray:
        having = [n for n, keys in NORM_SETTINGS.items() if set(stray) <= set(keys)]
        return (f"sets {', '.join(stray)}, which norm {norm} does not have; remove them"
                + (f" or use norm {' / '.join(having)}" if having else ""))
    if norm == "group" and "groups" not in variant:
        return "has norm group but no groups; set groups to a divisor of every normalized layer's width (e.g. 2)"
    if variant.get("input_bn", False) and norm not in BATCH_STATISTICS:
        return f"has input_bn, a BN layer on the raw inputs, with norm {norm}; remove input_bn or use norm batch / renorm"
    if "pool_placement" in variant and (norm == "weight" or variant["placement"] != "after"):
        return ("sets pool_placement, which places a normalization layer after the activation; set placement after "
                "(and a norm other than weight) or remove pool_placement")
    return None


def _check_consistency(config: dict, source: str, given: dict) -> None:
    """Checks across keys, which the schema cannot express. `given`: the keys each variant set itself
    (before defaults were filled in)."""
    _check_names(config["variants"], source)
    if BASELINE in config["variants"] and has_bn(config["variants"][BASELINE]):
        raise ConfigError(
            f"{source}: variants.{BASELINE} is the baseline without normalization every variant is compared with, "
            f"but it normalizes; give it placement none (and no input_bn), or give this variant another name"
        )
    for name, variant in config["variants"].items():
        if problem := variant_problem(variant, given.get(name, set())):
            raise ConfigError(f"{source}: variants.{name} {problem}")
    for name, dataset in config["datasets"].items():
        unknown = [v for v in dataset.get("variants", []) if v not in config["variants"]]
        if unknown:
            raise ConfigError(
                f"{source}: datasets.{name}.variants names unknown variant(s) {', '.join(unknown)}; "
                f"define them under 'variants' or use one of: {', '.join(config['variants'])}"
            )
        _check_skip(config, name, source)
        if not any(variant not in dataset["skip"].get(arch, [])
                   for arch, variant in product(dataset["archs"], dataset_variants(config, name))):
            raise ConfigError(
                f"{source}: datasets.{name} makes no runs: datasets.{name}.skip skips every variant on every "
                f"arch; train at least one (shorten skip) or remove the dataset"
            )
        if problem := data.problem(name, dataset):
            raise ConfigError(f"{source}: datasets.{name}.{problem}")
        unknown = [v for v in dataset.get("sweep_variants") or [] if v not in dataset_variants(config, name)]
        if unknown:
            raise ConfigError(
                f"{source}: datasets.{name}.sweep_variants names {', '.join(unknown)}, which the dataset does not "
                f"train; use some of: {', '.join(dataset_variants(config, name))}"
            )
        _check_batch_size(config, name, dataset["batch_size"], "batch_size", dataset_variants(config, name), source)
        for batch in dataset["sweeps"].get("batch_size", []):
            _check_batch_size(config, name, batch, "sweeps.batch_size", sweep_variants(config, name), source)
        unknown = [v for v in (dataset["variance"] or {}).get("variants", []) if v not in dataset_variants(config, name)]
        if unknown:
            raise ConfigError(
                f"{source}: datasets.{name}.variance.variants names {', '.join(unknown)}, which the dataset does not "
                f"train; use some of: {', '.join(dataset_variants(config, name))}"
            )
        if config.get("adaptive") and config["adaptive"]["max_seeds"] <= len(dataset_seeds(config, name)):
            raise ConfigError(
                f"{source}: adaptive.max_seeds {config['adaptive']['max_seeds']} leaves no seeds to add to dataset "
                f"{name}, which has {len(dataset_seeds(config, name))}; raise max_seeds above that or set adaptive: null"
            )
        if config.get("adaptive") and max(dataset_seeds(config, name)) + config["adaptive"]["max_seeds"] > SEED_LIMIT:
            raise ConfigError(
                f"{source}: adaptive seeds continue after the largest seed of dataset {name} "
                f"({max(dataset_seeds(config, name))}) and would pass {SEED_LIMIT}; use smaller seeds"
            )


def _check_names(variants: dict, source: str) -> None:
    """Every variant name must come back as itself from the CSV tables: pandas reads NA, None, NaN, null,
    ... as missing and True, inf, ... as other types, which would drop or rename the variant's runs."""
    import io

    import pandas as pd

    for name in variants:
        if pd.read_csv(io.StringIO(f"variant\n{name}"))["variant"].iloc[0] != name:
            raise ConfigError(
                f"{source}: variants.{name}: the tables would not read this name back as text (pandas takes it "
                f"for a missing value, a boolean or a number); rename the variant, e.g. {name}_v"
            )
        if re.search(r"(.+)\1{19,}\Z", name):  # Snakemake takes such wildcard values for runaway recursion
            raise ConfigError(
                f"{source}: variants.{name}: Snakemake refuses a name that ends in 20 or more repeats of the same "
                f"part (its check for runaway wildcards); shorten the repeated part"
            )
    folded = {}
    for name in variants:  # one run folder on a case-insensitive file system (macOS, Windows)
        if (other := folded.setdefault(name.lower(), name)) != name:
            first, second = sorted((other, name))
            raise ConfigError(f"{source}: variants.{first} and variants.{second} differ only in case, and would "
                              f"share run folders on a case-insensitive file system; rename one")


def _check_batch_size(config: dict, name: str, batch: int, key: str, variants: list[str], source: str) -> None:
    """A batch size the dataset can train with: at most the training set, and (with BN) no mini-batch of 1."""
    n = data.training_size(name, config["datasets"][name])
    if batch > n:
        raise ConfigError(
            f"{source}: datasets.{name}.{key} ({batch}) is larger than the training set ({n}); lower {key}"
        )
    with_bn = [v for v in variants if uses_batch_statistics(config["variants"][v])]
    if with_bn and (batch == 1 or n % batch == 1):
        raise ConfigError(
            f"{source}: datasets.{name}.{key} ({batch}) gives a mini-batch of 1 sample (training "
            f"set {n}), whose BN batch variance is undefined (variant {with_bn[0]}; PyTorch refuses it); "
            f"choose a batch_size > 1 that does not leave a remainder of 1"
        )


def _check_skip(config: dict, name: str, source: str) -> None:
    """datasets.<name>.skip names the dataset's archs and known variants, and covers every variant
    that has no meaning on an arch (spec.unsupported)."""
    dataset, key = config["datasets"][name], f"datasets.{name}.skip"
    for arch, skipped in dataset["skip"].items():
        if arch not in dataset["archs"]:
            raise ConfigError(f"{source}: {key} names arch {arch}, which datasets.{name}.archs does not train; "
                              f"use one of: {', '.join(dataset['archs'])}")
        unknown = [v for v in skipped if v not in config["variants"]]
        if unknown:
            raise ConfigError(f"{source}: {key}.{arch} names unknown variant(s) {', '.join(unknown)}; "
                              f"use names defined under 'variants'")
    for arch, variant in product(dataset["archs"], dataset_variants(config, name)):
        reason = unsupported(arch, config["variants"][variant])
        if reason and variant not in dataset["skip"].get(arch, []):
            raise ConfigError(
                f"{source}: variants.{variant} makes no sense for arch {arch}: {reason} (add it to {key}: "
                f"{{{arch}: [{variant}]}})"
            )


def dataset_seeds(config: dict, dataset: str) -> list[int]:
    return config["datasets"][dataset].get("seeds", config["seeds"])


SEED_LIMIT = 2 ** 32 - 1  # NumPy, Keras and sklearn take seeds up to this


def seed_groups(config: dict, dataset: str, seeds: list[int] | None = None) -> list[list[int]]:
    """The dataset's seeds (or `seeds`) in config order, cut into groups of runs_per_job: one training job
    trains one group of one arch x variant x framework."""
    seeds, size = seeds or dataset_seeds(config, dataset), config["datasets"][dataset]["runs_per_job"]
    return [seeds[first:first + size] for first in range(0, len(seeds), size)]


def adaptive_batches(config: dict, dataset: str) -> list[list[int]]:
    """The seeds adaptive seeding may add to a cell of `dataset`, batch by batch (one batch per look after
    the first): the seeds after the dataset's largest, until a cell has adaptive.max_seeds seeds; [] when
    adaptive seeding is off."""
    if not config.get("adaptive"):
        return []
    seeds, batch = dataset_seeds(config, dataset), config["adaptive"]["batch"]
    extra = list(range(max(seeds) + 1, max(seeds) + 1 + config["adaptive"]["max_seeds"] - len(seeds)))
    return [extra[first:first + batch] for first in range(0, len(extra), batch)]


def looks(config: dict) -> int:
    """How many times adaptive seeding may look at the data: the configured seeds, then each batch."""
    return 1 + max((len(adaptive_batches(config, name)) for name in config["datasets"]), default=0)


def training_groups(config: dict, dataset: str) -> list[tuple[tuple, list[int]]]:
    """(sweep point, seed group) of every training rule of `dataset`: the base run and each sweep point with
    the dataset's seed groups and adaptive seeding's batches, each crossed data-order seed with the
    initialization seeds (variance by source)."""
    points = [(sweeps.BASE, None), *sweeps.points(config["datasets"][dataset])]
    groups = seed_groups(config, dataset) + adaptive_batches(config, dataset)
    found = [(point, seeds) for point in points for seeds in groups]
    if crossed := config["datasets"][dataset].get("variance"):
        found += [((sweeps.ORDER_SEED, order), seeds) for order in crossed["order_seeds"]
                  for seeds in seed_groups(config, dataset, crossed["init_seeds"])]
    return found


def experiment(config: dict) -> dict:
    """The config without the settings that change no result (how often checkpoints are written, how
    runs are grouped into jobs): what the report shows, so that changing those reruns nothing."""
    datasets = {name: {k: v for k, v in settings.items() if k != "runs_per_job"}
                for name, settings in config["datasets"].items()}
    return {**{k: v for k, v in config.items() if k != "checkpoint_every"}, "datasets": datasets}


def training_jobs(config: dict, selected: list[dict] | None = None) -> int:
    """How many training jobs the config's runs (or the `selected` ones) make: seed groups of each
    arch x variant x framework x sweep point."""
    group = {(name, point, seed): i for name in config["datasets"]
             for i, (point, seeds) in enumerate(training_groups(config, name)) for seed in seeds}
    return len({(*(run[key] for key in RUN_KEYS[:4]), group[run["dataset"], (run["sweep"], run["sweep_value"]), run["seed"]])
                for run in (runs(config) if selected is None else selected)})


def run_count(config: dict) -> str:
    """What the config makes, in one line: runs and jobs in all, then base runs and each swept axis."""
    every = runs(config)
    parts = [f"{len(every)} runs in {training_jobs(config, every)} training jobs"]
    by_sweep = {}
    for run in every:
        by_sweep.setdefault(run["sweep"], []).append(run)
    if len(by_sweep) > 1 or sweeps.BASE not in by_sweep:
        label = {sweeps.BASE: "base settings", sweeps.ORDER_SEED: "crossed init x order seeds"}
        parts.append("(" + ", ".join(f"{label.get(sweep, 'sweep ' + sweep)}: "
                                     f"{len(chosen)} runs in {training_jobs(config, chosen)} jobs"
                                     for sweep, chosen in by_sweep.items()) + ")")
    return " ".join(parts)


def dataset_variants(config: dict, dataset: str) -> list[str]:
    return config["datasets"][dataset].get("variants", list(config["variants"]))


def sweep_variants(config: dict, dataset: str) -> list[str]:
    """The variants a dataset's sweeps run (default: all of the dataset's variants)."""
    return config["datasets"][dataset].get("sweep_variants") or dataset_variants(config, dataset)


def runs(config: dict) -> list[dict]:
    """Every run the config asks for, as dicts of RUN_KEYS: the base runs, then each sweep point's."""
    result = []
    for dataset, settings in config["datasets"].items():
        points = [(sweeps.BASE, None, dataset_variants(config, dataset))]
        points += [(axis, value, sweep_variants(config, dataset)) for axis, value in sweeps.points(settings)]
        for sweep, value, variants in points:
            combos = product(settings["archs"], variants, config["frameworks"], dataset_seeds(config, dataset))
            result += [dict(zip(RUN_KEYS, (dataset, arch, variant, framework, sweep, value, seed)))
                       for arch, variant, framework, seed in combos
                       if variant not in settings["skip"].get(arch, [])]
        result += crossed_runs(config, dataset)
    return result


def crossed_runs(config: dict, dataset: str) -> list[dict]:
    """Variance by source: every initialization seed x data-order seed of the dataset's `variance.variants`."""
    settings = config["datasets"][dataset]
    if not (crossed := settings.get("variance")):
        return []
    combos = product(settings["archs"], crossed["variants"], config["frameworks"], crossed["order_seeds"],
                     crossed["init_seeds"])
    return [dict(zip(RUN_KEYS, (dataset, arch, variant, framework, sweeps.ORDER_SEED, order, seed)))
            for arch, variant, framework, order, seed in combos if variant not in settings["skip"].get(arch, [])]


def dataset_params(config: dict, dataset: str) -> dict:
    """Settings that define the data itself (what the data rule needs)."""
    return {k: v for k, v in config["datasets"][dataset].items() if k in data.params(dataset)}


def _floats(settings: dict, *keys: str) -> dict:
    return {k: float(settings[k]) for k in keys if k in settings}


def resolve_run(config: dict, dataset: str, arch: str, variant: str, framework: str, seed: int,
                sweep: str = sweeps.BASE, sweep_value=None) -> dict:
    """The complete, self-contained settings of one run (written into summary.json): the dataset's
    settings with the sweep point's value in place."""
    if dataset not in config["datasets"] or variant not in config["variants"]:
        raise ConfigError(f"run {dataset}/{arch}/{variant}: the config defines no dataset {dataset!r} or no "
                          f"variant {variant!r}; ask for runs the config defines")
    if reason := unsupported(arch, config["variants"][variant]):
        raise ConfigError(f"run {dataset}/{arch}/{variant}: {reason} (this run cannot be made)")
    settings = config["datasets"][dataset]
    run = {
        "dataset": dataset,
        "arch": arch,
        "variant": variant,
        "framework": framework,
        "seed": int(seed),
        "epochs": settings["epochs"],
        "batch_size": settings["batch_size"],
        # YAML reads 50 as an int; Keras' optimizer and BN take floats only.
        "optimizer": {**settings["optimizer"], **_floats(settings["optimizer"], "learning_rate", "momentum")},
        "target_accuracy": settings["target_accuracy"],
        "bn": {**config["variants"][variant], **_floats(config["variants"][variant], "momentum", "epsilon")},
        "init_scale": float(settings["init_scale"]),
        "dropout": float(settings["dropout"]),
        "device": config["device"],
        "sweep": sweep,
        "sweep_value": None,
    }
    if sweep == sweeps.BASE:
        return run
    if sweep == sweeps.ORDER_SEED:  # the dataset's own settings; `seed` draws the weights, this the data order
        return {**run, "sweep_value": int(sweep_value), "order_seed": int(sweep_value)}
    if sweep not in sweeps.AXES:
        raise ConfigError(f"run {dataset}/{arch}/{variant}: unknown sweep axis {sweep!r}; use one of: "
                          f"base, {sweeps.ORDER_SEED}, {', '.join(sweeps.AXES)}")
    return {**sweeps.apply(run, sweep, sweep_value), "sweep_value": sweeps.normalized(sweep, sweep_value)}


# Expected seconds per epoch on one CPU core (training + the epoch's evaluations), measured with
# `make bench` and the pipeline's benchmark files, for SLURM's time limit; and peak memory per job.
EPOCH_SECONDS = {"mlp": 0.1, "mlp3": 3.0, "cnn": 60.0, "lstm": 30.0}
JOB_MEMORY_MB = {"keras": 2500, "torch": 1500}  # measured peaks: Keras ~1.2 GB, torch ~0.65 GB (mlp3)
JOB_MEMORY_PER_RUN_MB = 20  # per further run of a job: a margin (a 10-run circles Keras job peaked at 657 MB, as a 1-run job)


BENCH_BATCH_SIZE = 32  # EPOCH_SECONDS' batch size: smaller batches take more steps per epoch


def job_resources(config: dict, dataset: str, arch: str, framework: str, runs: int = 1,
                  batch_size: int | None = None) -> dict:
    """SLURM resources of one training job of `runs` runs: memory (MB; the runs follow one another on one
    copy of the data) and a time limit (minutes) of 3x the expected training time plus 5 minutes of
    start-up and slack; `batch_size` (default: the dataset's) scales the time for batches under 32."""
    settings = config["datasets"][dataset]
    steps = max(1.0, BENCH_BATCH_SIZE / (batch_size or settings["batch_size"]))
    return {"mem_mb": JOB_MEMORY_MB[framework] + JOB_MEMORY_PER_RUN_MB * (runs - 1),
            "runtime": 5 + math.ceil(3 * runs * settings["epochs"] * steps * EPOCH_SECONDS[arch] / 60)}
