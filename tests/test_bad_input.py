"""Bad input, end to end: the real Snakemake on a bad config, data folder or working directory exits
non-zero with one line naming the key or file and the fix, prints no traceback, and leaves no output
(nor a temporary file) behind. Every message here is listed in the README's troubleshooting table."""

import contextlib
import copy
import os
import shutil
import subprocess

import pytest

from conftest import REPO, TINY_CONFIG, snakemake, write_config

V = {"variants": ["v"]}  # run only variant "v" on circles


def config_with(**changes) -> dict:
    """TINY_CONFIG with dotted keys replaced, e.g. config_with(**{"datasets.circles.epochs": 0})."""
    config = copy.deepcopy(TINY_CONFIG)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return config


def variant(**settings) -> dict:
    """TINY_CONFIG training only variant v with these settings."""
    return config_with(**{"variants.v": settings, "datasets.circles.variants": ["v"]})


# (case, config, the line the user must see)
CONFIG_CASES = [
    ("unknown framework", config_with(frameworks=["keras", "jax"]),
     "frameworks.1: 'jax' is not one of ['keras', 'torch']; use one of: keras, torch"),
    ("unknown dataset", config_with(**{"datasets.mnist": {}}),
     "('mnist' was unexpected); allowed keys: circles, fashion_mnist"),
    ("unknown architecture", config_with(**{"datasets.circles.archs": ["resnet"]}),
     "datasets.circles.archs.0: 'resnet' is not one of ['mlp']; use one of: mlp"),
    ("unknown variant name", config_with(**{"datasets.circles.variants": ["zzz"]}),
     "datasets.circles.variants names unknown variant(s) zzz; define them under 'variants'"),
    ("variant without placement", variant(center=False),
     "variants.v: 'placement' is a required property; add the missing key"),
    ("bad placement", variant(placement="middle"),
     "variants.v.placement: 'middle' is not one of ['none', 'before', 'after']; use one of: none, before, after"),
    ("BN momentum above 1", variant(placement="after", momentum=1.5),
     "variants.v.momentum: 1.5 is greater than the maximum of 1; use a value <= 1"),
    ("BN momentum below 0", variant(placement="after", momentum=-0.1),
     "variants.v.momentum: -0.1 is less than the minimum of 0; use a value >= 0"),
    ("epsilon 0", variant(placement="after", epsilon=0),
     "variants.v.epsilon: 0 is less than or equal to the minimum of 0; use a value > 0"),
    ("BN settings without a BN layer", variant(placement="none", momentum=0.5),
     "variants.v sets momentum but has no normalization (placement none, no input_bn), so they would be ignored"),
    ("variant without meaning for the architecture",
     {"variants": {"v": {"placement": "before"}}, "datasets": {"fashion_mnist": {"archs": ["lstm"], "epochs": 1}}},
     "variants.v makes no sense for arch lstm: an LSTM's activations are inside its cell, so BN cannot go before "
     "them; use placement after, or skip this variant on lstm (add it to datasets.fashion_mnist.skip: {lstm: [v]})"),
    # combinations of the normalizer settings without meaning
    ("groups that do not divide the units", variant(placement="after", norm="group", groups=3),
     "variants.v makes no sense for arch mlp: groups 3 does not divide the 50 units of a normalized layer of mlp; "
     "use one of 1, 2, 5, 10, or skip this variant on mlp"),
    ("groups of one unit", variant(placement="after", norm="group", groups=50),
     "variants.v makes no sense for arch mlp: groups 50 leaves fewer than 4 units per group in a normalized layer of "
     "mlp (a group norm over so few values erases them); use one of 1, 2, 5, 10"),
    ("group norm without groups", variant(placement="after", norm="group"),
     "variants.v has norm group but no groups; set groups to a divisor of every normalized layer's width"),
    ("groups without group norm", variant(placement="after", groups=2),
     "variants.v sets groups, which norm batch does not have; remove them or use norm group"),
    ("renorm clipping on plain BN", variant(placement="after", rmax=3),
     "variants.v sets rmax, which norm batch does not have; remove them or use norm renorm"),
    ("BN momentum on layer norm", variant(placement="after", norm="layer", momentum=0.9),
     "variants.v sets momentum, which norm layer does not have; remove them or use norm batch / renorm"),
    ("epsilon on weight norm", variant(placement="after", norm="weight", epsilon=1e-5),
     "variants.v sets epsilon, which norm weight does not have; remove them or use norm batch / renorm / layer / group"),
    ("BN settings on selu without normalization", variant(placement="none", activation="selu", momentum=0.9),
     "variants.v sets momentum but has no normalization (placement none, no input_bn), so they would be ignored"),
    ("norm without placement", variant(placement="none", norm="layer"),
     "variants.v sets norm but has no normalization (placement none, no input_bn)"),
    ("pool_placement on an arch without pooling", variant(placement="after", pool_placement="after"),
     "variants.v makes no sense for arch mlp: mlp has no pooling layer (pool_placement is for cnn); skip this "
     "variant on mlp"),
    ("pool_placement with BN before the activation", variant(placement="before", pool_placement="after"),
     "variants.v sets pool_placement, which places a normalization layer after the activation; set placement after"),
    ("selu on an LSTM",
     {"variants": {"v": {"placement": "none", "activation": "selu"}},
      "datasets": {"fashion_mnist": {"archs": ["lstm"], "epochs": 1}}},
     "variants.v makes no sense for arch lstm: an LSTM's activations are inside its cell, so selu cannot replace them"),
    ("input BN with layer norm", variant(placement="none", input_bn=True, norm="layer"),
     "variants.v has input_bn, a BN layer on the raw inputs, with norm layer; remove input_bn or use norm batch / renorm"),
    ("unknown norm", variant(placement="after", norm="instance"),
     "variants.v.norm: 'instance' is not one of ['batch', 'renorm', 'layer', 'group', 'weight']; use one of: batch, "
     "renorm, layer, group, weight"),
    ("renorm rmin above 1", variant(placement="after", norm="renorm", rmin=2),
     "variants.v.rmin: 2 is greater than the maximum of 1; use a value <= 1"),
    ("epochs 0", config_with(**{"datasets.circles.epochs": 0}),
     "datasets.circles.epochs: 0 is less than the minimum of 1; use a value >= 1"),
    ("batch size 0", config_with(**{"datasets.circles.batch_size": 0}),
     "datasets.circles.batch_size: 0 is less than the minimum of 1; use a value >= 1"),
    ("batch size above the training set", config_with(**{"datasets.circles.batch_size": 600}),
     "datasets.circles.batch_size (600) is larger than the training set (500); lower batch_size"),
    ("last mini-batch of one sample with BN", config_with(**{"datasets.circles.batch_size": 499}),
     "datasets.circles.batch_size (499) gives a mini-batch of 1 sample (training set 500)"),
    ("empty seeds", config_with(seeds=[]), "seeds: [] should be non-empty; give at least 1"),
    ("duplicate seeds", config_with(seeds=[1, 1]), "seeds: [1, 1] has non-unique elements; remove the duplicates"),
    ("non-integer seed", config_with(seeds=[1.5]), "seeds.0: 1.5 is not of type 'integer'; use a whole number"),
    ("target accuracy 0", config_with(**{"datasets.circles.target_accuracy": 0}),
     "datasets.circles.target_accuracy: 0 is less than or equal to the minimum of 0; use a value > 0"),
    ("target accuracy above 1", config_with(**{"datasets.circles.target_accuracy": 1.5}),
     "datasets.circles.target_accuracy: 1.5 is greater than the maximum of 1; use a value <= 1"),
    ("SGD momentum 1", config_with(**{"datasets.circles.optimizer": {"momentum": 1}}),
     "datasets.circles.optimizer.momentum: 1 is greater than or equal to the maximum of 1; use a value < 1"),
    ("learning rate 0", config_with(**{"datasets.circles.optimizer": {"learning_rate": 0}}),
     "datasets.circles.optimizer.learning_rate: 0 is less than or equal to the minimum of 0; use a value > 0"),
    ("unknown sweep axis", config_with(**{"datasets.circles.sweeps": {"momentum": [0.5]}}),
     "datasets.circles.sweeps: Additional properties are not allowed ('momentum' was unexpected); allowed keys: "
     "batch_size, dropout, init_scale, learning_rate"),
    ("swept learning rate 0", config_with(**{"datasets.circles.sweeps": {"learning_rate": [0, 0.1]}}),
     "datasets.circles.sweeps.learning_rate.0: 0 is less than or equal to the minimum of 0; use a value > 0"),
    ("swept dropout rate 1", config_with(**{"datasets.circles.sweeps": {"dropout": [0, 1]}}),
     "datasets.circles.sweeps.dropout.1: 1 is greater than or equal to the maximum of 1; use a value < 1"),
    ("swept batch size not whole", config_with(**{"datasets.circles.sweeps": {"batch_size": [8.5]}}),
     "datasets.circles.sweeps.batch_size.0: 8.5 is not of type 'integer'; use a whole number"),
    ("swept batch size above the training set", config_with(**{"datasets.circles.sweeps": {"batch_size": [600]}}),
     "datasets.circles.sweeps.batch_size (600) is larger than the training set (500); lower sweeps.batch_size"),
    ("sweep variant the dataset does not train", config_with(**{"datasets.circles.sweep_variants": ["bn_before"]}),
     "datasets.circles.sweep_variants names bn_before, which the dataset does not train; use some of: none, bn_after"),
    ("init scale 0", config_with(**{"datasets.circles.init_scale": 0}),
     "datasets.circles.init_scale: 0 is less than or equal to the minimum of 0; use a value > 0"),
    # Types and values that pass a plain JSON Schema but fail later: whole numbers written as floats,
    # NaN and infinity, values beyond what NumPy, sklearn or SLURM take, a config that makes no run.
    ("epochs written as a float", config_with(**{"datasets.circles.epochs": 2.0}),
     "datasets.circles.epochs: 2.0 is not of type 'integer'; write it as a whole number, without a decimal point "
     "(2, not 2.0)"),
    ("batch size written as a float", config_with(**{"datasets.circles.batch_size": 32.0}),
     "datasets.circles.batch_size: 32.0 is not of type 'integer'; write it as a whole number"),
    ("seed written as a float", config_with(seeds=[1.0, 2]),
     "seeds.0: 1.0 is not of type 'integer'; write it as a whole number, without a decimal point (1, not 1.0)"),
    ("NaN target accuracy", config_with(**{"datasets.circles.target_accuracy": float("nan")}),
     "datasets.circles.target_accuracy: nan is not of type 'number'; use a finite number"),
    ("infinite learning rate", config_with(**{"datasets.circles.optimizer": {"learning_rate": float("inf")}}),
     "datasets.circles.optimizer.learning_rate: inf is not of type 'number'; use a finite number"),
    ("NaN BN momentum", variant(placement="after", momentum=float("nan")),
     "variants.v.momentum: nan is not of type 'number'; use a finite number"),
    ("NaN swept learning rate", config_with(**{"datasets.circles.sweeps": {"learning_rate": [0.1, float("nan")]}}),
     "datasets.circles.sweeps.learning_rate.1: nan is not of type 'number'; use a finite number"),
    ("seed beyond NumPy's", config_with(seeds=[2**32]),
     "seeds.0: 4294967296 is greater than the maximum of 4294967295; use a value <= 4294967295"),
    ("make_circles random_state beyond sklearn's", config_with(**{"datasets.circles.random_state": 2**32}),
     "datasets.circles.random_state: 4294967296 is greater than the maximum of 4294967295; use a value <= 4294967295"),
    ("absurd epochs", config_with(**{"datasets.circles.epochs": 10**30}),
     "datasets.circles.epochs: 1000000000000000000000000000000 is greater than the maximum of 10000; "
     "use a value <= 10000"),
    ("absurd make_circles noise", config_with(**{"datasets.circles.noise": 1e6}),
     "datasets.circles.noise: 1000000.0 is greater than the maximum of 10; use a value <= 10"),
    ("config that makes no runs", config_with(**{"datasets.circles.skip": {"mlp": ["none", "bn_after"]}}),
     "datasets.circles makes no runs: datasets.circles.skip skips every variant on every arch; train at least one"),
    # Names: one rule (full match, at most 40 characters), names that come back from the tables as text, and
    # `none` is the no-BN baseline.
    ("variant name with a trailing newline", {**TINY_CONFIG, "variants": {"none": {"placement": "none"},
                                                                        "v\n": {"placement": "after"}}},
     "variants: 'v\\n' is not allowed; use a name: a letter, then letters, digits or _ (at most 40 characters)"),
    ("variant name too long", {**TINY_CONFIG, "variants": {"none": {"placement": "none"}, "v" * 41: {"placement": "after"}}},
     "is not allowed; use a name: a letter, then letters, digits or _ (at most 40 characters)"),
    ("dataset variant list with a trailing newline", config_with(**{"datasets.circles.variants": ["none\n"]}),
     "datasets.circles.variants.0: 'none\\n' is not allowed; use a name"),
    *[(f"variant named {name}", {**config_with(**{"datasets.circles.variants": ["none", name]}),
                                 "variants": {"none": {"placement": "none"}, name: {"placement": "after"}}},
       f"variants.{name}: the tables would not read this name back as text (pandas takes it for a missing value, a "
       f"boolean or a number); rename the variant, e.g. {name}_v") for name in ("NA", "None", "null", "True", "inf")],
    ("variant name Snakemake takes for runaway recursion",
     {**TINY_CONFIG, "variants": {"none": {"placement": "none"}, "bn_eps1e" + "0" * 20: {"placement": "after"}}},
     "variants.bn_eps1e00000000000000000000: Snakemake refuses a name that ends in 20 or more repeats of the same "
     "part (its check for runaway wildcards); shorten the repeated part"),
    ("variant names that differ only in case",
     {**TINY_CONFIG, "variants": {"none": {"placement": "none"}, "bn_after": {"placement": "after"},
                                  "BN_after": {"placement": "before"}}},
     "variants.BN_after and variants.bn_after differ only in case, and would share run folders on a case-insensitive "
     "file system; rename one"),
    ("misspelt equivalence margin", config_with(equivalence_margins={"test_acuracy": 0.02}),
     "equivalence_margins: 'test_acuracy' is not one of ['test_accuracy', "),
    ("train_subset beyond what validation leaves",
     {**TINY_CONFIG, "datasets": {"fashion_mnist": {"train_subset": 59999, "epochs": 1}}},
     "datasets.fashion_mnist.train_subset (59999) is larger than the 55000 training images that validation_size "
     "5000 leaves; lower train_subset (or null for all of them)"),
    # variance by source and adaptive seeding
    ("crossed variant the dataset does not train",
     config_with(**{"datasets.circles.variance": {"variants": ["bn_before"], "init_seeds": [1, 2], "order_seeds": [1, 2]}}),
     "datasets.circles.variance.variants names bn_before, which the dataset does not train; use some of: none, bn_after"),
    ("a crossed grid of one seed", config_with(**{"datasets.circles.variance": {
        "variants": ["bn_after"], "init_seeds": [1], "order_seeds": [1, 2]}}),
     "datasets.circles.variance.init_seeds: [1] is too short; give at least 2"),
    ("adaptive max_seeds without room", config_with(adaptive={"max_seeds": 3, "batch": 1}, seeds=[1, 2, 3]),
     "adaptive.max_seeds 3 leaves no seeds to add to dataset circles, which has 3; raise max_seeds above that or set "
     "adaptive: null"),
    ("adaptive seeds past the seed limit", config_with(adaptive={"max_seeds": 10, "batch": 2}, seeds=[4294967290, 1]),
     "adaptive seeds continue after the largest seed of dataset circles (4294967290) and would pass 4294967295; use "
     "smaller seeds"),
    ("baseline none with a BN layer", {**TINY_CONFIG, "variants": {"none": {"placement": "after"},
                                                                   "bn_after": {"placement": "after"}}},
     "variants.none is the baseline without normalization every variant is compared with, but it normalizes; give "
     "it placement none (and no input_bn), or give this variant another name"),
]
BAD_INPUT_MESSAGES = [message for _, _, message in CONFIG_CASES]


def outputs_left(workdir) -> list[str]:
    """Files a failed run must not leave: results, datasets, figures, reports, temporaries."""
    left = []
    for root, _, files in os.walk(workdir):
        rel = os.path.relpath(root, workdir)
        if rel.split(os.sep)[0] in (".snakemake", "logs", "fashion"):
            continue
        left += [os.path.join(rel, f) for f in files if not (rel == "." and f == "config.yaml")]
    return left


def assert_fails_cleanly(workdir, message: str, *args: str) -> str:
    proc = snakemake(workdir, "--cores", "1", *args, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert any(message in line for line in text.splitlines()), f"missing {message!r} in:\n{text}"
    assert "Traceback" not in text, text
    assert outputs_left(workdir) == [], outputs_left(workdir)
    return text


@pytest.mark.parametrize("config, message", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_stops_the_workflow_with_one_line(tmp_path, config, message):
    write_config(tmp_path, config)
    assert_fails_cleanly(tmp_path, message)


INVALID_YAML = "config.yaml: line 3: not valid YAML"
BAD_INPUT_MESSAGES.append(INVALID_YAML)


def test_config_that_is_not_yaml_names_file_and_line(tmp_path):
    (tmp_path / "config.yaml").write_text("datasets:\n  circles: {epochs: 3\nseeds: [1]\n")
    assert_fails_cleanly(tmp_path, INVALID_YAML)


NOT_UTF8 = "config.yaml: not UTF-8 text (byte 5); save the file as UTF-8"
UNREADABLE_CONFIG = "config.yaml: cannot read the config file (Is a directory)"
BAD_INPUT_MESSAGES += [NOT_UTF8, UNREADABLE_CONFIG]


def test_config_that_is_not_utf8_or_not_a_file_names_the_problem(tmp_path):
    (tmp_path / "config.yaml").write_bytes("# caf\xe9\nseeds: [1]\n".encode("latin-1"))
    assert_fails_cleanly(tmp_path, NOT_UTF8)
    (tmp_path / "config.yaml").unlink()
    (tmp_path / "config.yaml").mkdir()
    proc = snakemake(tmp_path, "--cores", "1", check=False)
    assert proc.returncode != 0 and UNREADABLE_CONFIG in proc.stderr and "Traceback" not in proc.stderr


UNWRITABLE = "results is a file, not a folder; run from a folder you can write to"
UNWRITABLE_PERMISSION = "results is not writable ("
BAD_INPUT_MESSAGES += [UNWRITABLE, UNWRITABLE_PERMISSION]


def stops_with(workdir, message: str) -> None:
    """Snakemake stops with `message` and no traceback (what it leaves is the caller's to check: the
    user's own files are in the way here)."""
    proc = snakemake(workdir, "--cores", "1", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in text and "Traceback" not in text, text


def test_results_path_that_is_a_file_stops_the_workflow(tmp_path):
    write_config(tmp_path, TINY_CONFIG)
    (tmp_path / "results").write_text("not a folder")
    stops_with(tmp_path, UNWRITABLE)
    assert not (tmp_path / "resources").exists() and (tmp_path / "results").read_text() == "not a folder"


@contextlib.contextmanager
def read_only_folder(path):
    """A folder this process cannot write to: mode 555, or for root (who ignores modes) a read-only
    tmpfs mounted there."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield
        path.chmod(0o755)
        return
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"root cannot mount a read-only tmpfs here: {mount.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_read_only_results_folder_stops_the_workflow(tmp_path):
    write_config(tmp_path, TINY_CONFIG)
    with read_only_folder(tmp_path / "results"):
        stops_with(tmp_path, UNWRITABLE_PERMISSION)
    assert not (tmp_path / "resources").exists() and not any((tmp_path / "results").iterdir())


def _spoil_missing(path):
    path.unlink()


def _spoil_truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _spoil_corrupted(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# (case, how the file is spoilt, the line the user must see; {path} is the spoilt file)
DATA_CASES = [
    ("missing file", _spoil_missing, "{path}: missing; set datasets.fashion_mnist.dir to a folder holding"),
    ("truncated file", _spoil_truncated, "{path}: MD5 checksum mismatch (truncated or corrupted); replace the file"),
    ("corrupted file", _spoil_corrupted, "{path}: MD5 checksum mismatch (truncated or corrupted); replace the file"),
]
BAD_INPUT_MESSAGES += [message.split("{path}: ")[1] for _, _, message in DATA_CASES]


@pytest.mark.parametrize("spoil, message", [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_fashion_mnist_folder_fails_the_dataset_job_and_leaves_no_cache(tmp_path, fashion_dir, spoil, message):
    folder = tmp_path / "fashion"
    shutil.copytree(fashion_dir, folder)
    spoilt = folder / "train-labels-idx1-ubyte.gz"
    spoil(spoilt)
    write_config(tmp_path, {"frameworks": ["torch"], "seeds": [1], "variants": {"none": {"placement": "none"}},
                            "datasets": {"fashion_mnist": {"dir": str(folder), "train_subset": 64, "epochs": 1}}})
    text = assert_fails_cleanly(tmp_path, message.format(path=spoilt))
    assert "Error in rule dataset" in text


UNREADABLE_CACHE = "unreadable dataset cache"
BAD_INPUT_MESSAGES.append(UNREADABLE_CACHE)


def test_corrupt_dataset_cache_fails_training_with_a_fix(tmp_path):
    write_config(tmp_path, config_with(frameworks=["torch"], seeds=[1], **{"datasets.circles.variants": ["none"]}))
    cache = tmp_path / "resources/data/circles.npz"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"not an npz file")
    proc = snakemake(tmp_path, "--cores", "1", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"{UNREADABLE_CACHE} (" in text and "delete it and rerun to regenerate" in text
    assert not (tmp_path / "results").exists()


def test_readme_troubleshooting_lists_every_message():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Troubleshooting"):]
    table = table[: table.find("\n## ", 1) if "\n## " in table[1:] else None]
    missing = [m for m in BAD_INPUT_MESSAGES if m.split("; ")[0] not in table]
    assert not missing, f"README troubleshooting lacks: {missing}"


# The CLI the rules call, used by hand: (case, arguments of `python -m bnbench`, the line the user must
# see). {run} is a circles run's settings as JSON, {run:key=value} the same with one setting changed.
CLI_CASES = [
    ("--run not JSON", ["--run", "{bad"], "argument --run: not valid JSON ("),
    ("--run not an object", ["--run", "[1]"], "argument --run: '[1]' is not a JSON object or a list of them"),
    ("fewer outputs than runs", ["--run", "{runs}"],
     "--history gives 1 path(s) for 2 run(s); give one per run, in the order of --run"),
    ("runs of two frameworks in one job", ["--run", "{runs:framework=keras}", "--history", "out/1.csv", "out/2.csv",
                                           "--summary", "out/1.json", "out/2.json"],
     "--run: the runs of one job differ in framework (keras, torch); give one job runs of one dataset, arch"),
    ("one run twice in one job", ["--run", "{twice}", "--history", "out/1.csv", "out/2.csv",
                                  "--summary", "out/1.json", "out/2.json"],
     "--run names one run twice; give each run of a job once"),
    ("--run incomplete", ["--run", '{"seed": 1}'], "--run lacks dataset, arch, variant, framework, sweep, sweep_value, epochs"),
    ("--run unknown framework", ["--run", "{run:framework=jax}"], "unknown framework 'jax'; use one of: keras, torch"),
    ("--run unknown arch", ["--run", "{run:arch=resnet}"], "--run arch 'resnet' is unknown; use one of"),
    ("--run epochs quoted", ["--run", "{run:epochs=3}"], "--run epochs '3' is not a whole number >= 1"),
    ("--run arch of another dataset", ["--run", "{run:arch=mlp3}"],
     "arch mlp3 takes samples of shape (28, 28), the data holds (2,); train it on its own dataset"),
    ("missing dataset cache", ["--data", "missing.npz"], "missing.npz: dataset cache not found"),
    ("truncated dataset cache", ["--data", "{torn}"], "unreadable dataset cache (File is not a zip file)"),
    ("negative checkpoint frequency", ["--checkpoint-every", "-1"],
     "argument --checkpoint-every: '-1' is not a whole number >= 0"),
    ("zero threads", ["--threads", "0"], "argument --threads: '0' is not a whole number >= 1"),
    ("data --params with an unknown key", ["data", "circles", "--params", '{"foo": 1}', "--out", "out/c.npz"],
     "--params: circles takes no foo; pass the settings bnbench.config.dataset_params gives"),
]
BAD_INPUT_MESSAGES += [message for _, _, message in CLI_CASES]


def cli_arguments(args: list[str], run: dict, circles_npz, torn) -> list[str]:
    """`train` with a good run, data and outputs, the case's arguments replacing them; other verbs as given."""
    import json

    if args[0] == "data":
        return args
    given = {"--run": "{run}", "--data": str(circles_npz), "--history": "out/history.csv",
             "--summary": "out/summary.json"}
    option = None
    for arg in args:  # options with one or more values
        if arg.startswith("--"):
            option, given[arg] = arg, []
        else:
            given[option] = [*given[option], arg] if isinstance(given[option], list) else [arg]
    given = {k: v if isinstance(v, list) else [v] for k, v in given.items()}
    token = given["--run"][0]
    if token.startswith(("{run", "{runs")):  # {runs}: two seeds of one run, the second with key=value
        key, _, value = token.split(":", 1)[1][:-1].partition("=") if ":" in token else ("", "", "")
        changed = {**run, **({key: value} if key else {})}
        given["--run"] = [json.dumps(changed if token.startswith("{run:") or token == "{run}"
                                     else [run, {**changed, "seed": 2}])]
    elif token == "{twice}":
        given["--run"] = [json.dumps([run, run])]
    given["--data"] = [given["--data"][0].replace("{torn}", str(torn))]
    return ["train", *[a for option, values in given.items() for a in (option, *values)]]


@pytest.mark.parametrize("args, message", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_cli_arguments_fail_with_one_line(tmp_path, circles_npz, args, message):
    import sys

    from bnbench.config import resolve_run, validate_config
    from conftest import ENV

    run = resolve_run(validate_config(copy.deepcopy(TINY_CONFIG)), "circles", "mlp", "none", "torch", 1)
    torn = tmp_path / "torn.npz"
    torn.write_bytes(circles_npz.read_bytes()[:100])
    proc = subprocess.run([sys.executable, "-m", "bnbench", *cli_arguments(args, run, circles_npz, torn)],
                          cwd=tmp_path, env={**ENV, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


# --- YAML that the parser accepts but the config must not: duplicate keys, alias bombs ----------------
DUPLICATE_KEY = "config.yaml: line 4: key 'seeds' is given twice (first on line 1); YAML would keep only the last"
ALIAS_BOMB = "config.yaml: its aliases (*name) expand to more than 100,000 values; write the values out"
RECURSIVE_ALIAS = "config.yaml: an alias refers to the node that holds it (an infinite value); remove the alias"
BAD_INPUT_MESSAGES += [DUPLICATE_KEY, ALIAS_BOMB, RECURSIVE_ALIAS]
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n" for previous, name in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("text, message", [
    ("seeds: [1]\ndatasets:\n  circles: {epochs: 2}\nseeds: [2]\n", DUPLICATE_KEY),
    (BOMB + "seeds: [1]\n", ALIAS_BOMB),
    ("seeds: &s [1, *s]\n", RECURSIVE_ALIAS),
], ids=["duplicate key", "alias bomb", "recursive alias"])
def test_yaml_that_would_be_silently_wrong_or_explode_is_refused(tmp_path, text, message):
    (tmp_path / "config.yaml").write_text(text)
    assert_fails_cleanly(tmp_path, message)  # the bomb expands to 9**9 values: refused before expansion


# YAML 1.1 surprises: what a user writes is read as something else, or not read at all.
TOO_DEEP = "config.yaml: nested too deeply (hundreds of levels); flatten the config"
TOO_LARGE = "config.yaml: it holds more than 100,000 values (a config holds a few hundred); shorten the lists"
OCTAL = "config.yaml: line 1: 010 is read by YAML as an octal number; write it in decimal without a leading 0 or colon"
BASE_60 = "config.yaml: line 2: 1:30 is read by YAML as a base-60 number; write it in decimal"
EXPONENT = ("datasets.circles.optimizer.learning_rate: '1e-3' is not of type 'number'; YAML reads 1e-3 as text (it needs "
            "a dot and a signed exponent): write 1.0e-3")
BOOLEAN_NAME = ("variants: True is not of type 'string'; YAML reads yes/no/on/off/true/false as a boolean and "
                "~/null/an empty value as nothing; put the name in quotes, e.g. 'on'")
QUOTED = "datasets.circles.epochs: '12' is not of type 'integer'; remove the quotes around 12 (a quoted number is text)"
BAD_INPUT_MESSAGES += [TOO_DEEP, TOO_LARGE, OCTAL, BASE_60, EXPONENT, BOOLEAN_NAME, QUOTED]


@pytest.mark.parametrize("text, message", [
    ("datasets: {circles: {}}\nextra: " + "[" * 700 + "]" * 700 + "\n", TOO_DEEP),
    ("datasets: {circles: {}}\nseeds: [" + ", ".join(map(str, range(100_001))) + "]\n", TOO_LARGE),
    ("seeds: [010]\ndatasets: {circles: {epochs: 2}}\n", OCTAL),
    ("seeds: [1]\ndatasets: {circles: {epochs: 1:30}}\n", BASE_60),
    ("datasets: {circles: {optimizer: {learning_rate: 1e-3}}}\n", EXPONENT),
    ("datasets: {circles: {}}\nvariants: {none: {placement: none}, on: {placement: after}}\n", BOOLEAN_NAME),
    ("datasets: {circles: {epochs: '12'}}\n", QUOTED),
], ids=["deep nesting", "huge plain list", "octal", "base 60", "exponent without a dot", "boolean name", "quoted number"])
def test_yaml_read_as_something_else_is_refused_with_the_reason(tmp_path, text, message):
    (tmp_path / "config.yaml").write_text(text)
    assert_fails_cleanly(tmp_path, message)


def test_yaml_anchors_within_the_limit_still_work(tmp_path):
    (tmp_path / "config.yaml").write_text(
        "frameworks: [torch]\nseeds: [1]\nvariants:\n  none: &plain {placement: none}\n  other: *plain\n"
        "datasets:\n  circles: {epochs: 1, variants: [none, other]}\n")
    assert "2 runs in 2 training jobs" in snakemake(tmp_path, "-n").stderr


# --- what the workflow will write, checked before any job ------------------------------------------
DANGLING = "results is a symlink to nowhere, which does not exist; create its target or remove the link"
UNWRITABLE_DATA = "resources/data is not writable ("
BAD_INPUT_MESSAGES += [DANGLING, UNWRITABLE_DATA]


def test_dangling_results_symlink_stops_the_workflow(tmp_path):
    write_config(tmp_path, TINY_CONFIG)
    (tmp_path / "results").symlink_to("nowhere")
    stops_with(tmp_path, DANGLING)
    assert not (tmp_path / "resources").exists() and (tmp_path / "results").is_symlink()


@pytest.mark.parametrize("folder", ["logs/data", "logs/plots"])
def test_dangling_log_folder_stops_the_workflow_before_any_job(tmp_path, folder):
    write_config(tmp_path, TINY_CONFIG)
    (tmp_path / folder).parent.mkdir(parents=True)
    (tmp_path / folder).symlink_to("nowhere")
    stops_with(tmp_path, f"{folder} is a symlink to nowhere, which does not exist")
    assert not (tmp_path / "resources").exists()


def test_read_only_data_folder_stops_the_workflow(tmp_path):
    write_config(tmp_path, TINY_CONFIG)
    (tmp_path / "resources").mkdir()
    with read_only_folder(tmp_path / "resources/data"):
        stops_with(tmp_path, UNWRITABLE_DATA)
    assert not (tmp_path / "results").exists()


DISK_FULL = "no space left on the device writing"
BAD_INPUT_MESSAGES.append(DISK_FULL)


@contextlib.contextmanager
def small_disk(folder, size: str):
    """`folder` (created) on a tmpfs of `size` for the duration: a disk that fills up."""
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs (a disk that fills up) needs root to mount")
    folder.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_fails_the_job_with_one_line_and_leaves_nothing_half_written(tmp_path):
    write_config(tmp_path, config_with(frameworks=["torch"], seeds=[1, 2, 3], **{"datasets.circles.variants": ["none"]}))
    with small_disk(tmp_path / "results", "8k") as results:
        (results / "keep").touch()  # Snakemake removes empty output folders: not the mount point
        proc = snakemake(tmp_path, "--cores", "1", check=False)
        written = [p for p in results.rglob("*") if p.is_file()]
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and DISK_FULL in text, text
    assert "Traceback" not in "".join(p.read_text() for p in (tmp_path / "logs/train").rglob("*.log"))
    assert not [p for p in written if p.name.endswith(".tmp")]  # whole files or none


def test_full_disk_before_any_job_is_one_line(tmp_path):
    """The workflow writes its report captions while Snakemake reads the Snakefile: a full disk there too."""
    with small_disk(tmp_path / "full", "64k") as workdir:
        write_config(workdir, TINY_CONFIG)
        try:
            with open(workdir / "filler", "wb", buffering=0) as out:  # fill the disk
                while True:
                    out.write(b"\0" * 4096)
        except OSError:
            pass
        proc = snakemake(workdir, "-n", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and DISK_FULL in text and "Traceback" not in text, text


# --- the runs' files that `combine` reads: checked, one line naming the file and the fix --------------
DAMAGED = "the file is damaged or not bnbench's: delete the run's folder"
BAD_INPUT_MESSAGES.append(DAMAGED)
RUN = "results/runs/circles/mlp/none/torch/seed2"


def _append_garbage(folder):
    with open(folder / "history.csv", "a") as handle:
        handle.write("bogus,row\n")


def _truncate_summary(folder):
    path = folder / "summary.json"
    path.write_text(path.read_text()[:150])


def _spoil_number(folder):
    path = folder / "history.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].rsplit(",", 1)[0] + ",fast\r\n"
    path.write_text("".join(lines))


def _drop_epoch(folder):
    path = folder / "history.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2] + lines[3:]))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny workflow (torch, none, two seeds) to spoil copies of."""
    workdir = tmp_path_factory.mktemp("finished")
    write_config(workdir, config_with(frameworks=["torch"], seeds=[1, 2], **{"datasets.circles.variants": ["none"],
                                                                             "datasets.circles.epochs": 2}))
    snakemake(workdir, "--cores", "2", "results/summary.csv")
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("spoil, problem", [
    (_append_garbage, "history.csv: line 4 has dataset 'bogus', not 'circles' as the run"),
    (_truncate_summary, "summary.json: not valid JSON ("),
    (_spoil_number, "history.csv: column epoch_seconds holds 'fast' (line 3), not a number"),
    (_drop_epoch, "history.csv: its epochs are not 1..2 in order, as summary.json's epochs_trained says"),
], ids=["garbage line", "truncated summary", "text in a number column", "missing epoch"])
def test_damaged_run_files_stop_combine_with_the_file_and_the_fix(tmp_path, finished_run, spoil, problem):
    workdir = tmp_path / "w"
    shutil.copytree(finished_run, workdir, symlinks=True)
    for table in ("history.parquet", "summary.csv"):
        (workdir / "results" / table).unlink()
    spoil(workdir / RUN)
    proc = snakemake(workdir, "--cores", "1", "results/summary.csv", check=False)
    text = proc.stdout + proc.stderr
    line = f"bnbench: error: {RUN}/{problem}"
    assert proc.returncode != 0 and line in text and f"{DAMAGED} {RUN} and rerun snakemake" in text, text
    assert "Traceback" not in text
    assert not list((workdir / "results").glob("*.*"))  # no table, no temporary
