"""Keras, PyTorch and the NumPy reference compute the same batch normalization and the same SGD steps.

Differences are measured as max |a - b| / max |b| per array (b = the reference, or Keras), and the
largest value per check is printed at the end of the test session (see conftest.record_parity).
"""

import itertools

import numpy as np
import pytest
import torch
import yaml

from bnbench.training import reference, spec
from bnbench.training.backends import keras as keras_backend, torch as torch_backend
from bnbench.training.bn import BNSettings
from bnbench.training.loop import prepare
from conftest import REPO, record_parity

# What BN sees for each placement the schema allows: pre-activations, ReLU outputs (about half zeros),
# raw inputs (pixels in [0, 1]). Offsets and scales far from 0 / 1 so normalization does real work.
PLACEMENT_INPUTS = {
    "before": lambda rng, shape: rng.normal(3.0, 2.0, shape),
    "after": lambda rng, shape: np.maximum(rng.normal(0.5, 1.5, shape), 0.0),
    "input": lambda rng, shape: rng.uniform(0.0, 1.0, shape),
}
# Sample shapes (channels last): dense features, conv feature maps, an LSTM's input sequence.
LAYOUTS = {"1d": (8,), "conv": (5, 5, 4), "sequence": (6, 4)}
BATCH, UPDATES = 16, 5
TOLERANCE = 1e-5  # float32 against the float64 reference


def relative(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


def torch_forward(model, x: np.ndarray, training: bool) -> np.ndarray:
    """Run a torch model on channels-last NumPy input; conv output comes back channels-last."""
    model.train(training)
    with torch.no_grad():
        y = model(torch.from_numpy(x.astype(np.float32)))
    return (y.permute(0, 2, 3, 1) if y.dim() == 4 else y).numpy()


def random_bn_state(rng, features: int) -> dict:
    """Non-identity gamma/beta, so turning center/scale off is visible."""
    return {"gamma": rng.uniform(0.5, 2.0, features).astype(np.float32),
            "beta": rng.normal(0.0, 1.0, features).astype(np.float32),
            "moving_mean": np.zeros(features, np.float32), "moving_variance": np.ones(features, np.float32)}


BN_SETTINGS = [BNSettings(momentum, epsilon, center, scale) for momentum, epsilon, center, scale
               in itertools.product([0.0, 0.5, 0.99], [1e-3, 1e-5], [True, False], [True, False])]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("placement", PLACEMENT_INPUTS)
def test_bn_layer_matches_reference_in_both_frameworks(placement, layout):
    """Training output per update, moving mean/variance after each of k updates, inference output."""
    shape = LAYOUTS[layout]
    for case, settings in enumerate(BN_SETTINGS):
        rng = np.random.default_rng([case, len(shape)])
        state = random_bn_state(rng, shape[-1])
        layers = [spec.BatchNorm(settings)]
        models = {"keras": keras_backend.build_model(layers, shape, [state]),
                  "torch": torch_backend.build_model(layers, shape, [state])}
        ref = reference.BatchNorm(shape[-1], settings.momentum, settings.epsilon)
        ref.gamma = state["gamma"] if settings.scale else np.ones(shape[-1])
        ref.beta = state["beta"] if settings.center else np.zeros(shape[-1])
        for _ in range(UPDATES):  # a fresh batch per update, never zeros
            x = PLACEMENT_INPUTS[placement](rng, (BATCH, *shape)).astype(np.float32)
            expected = ref.train_step(x)
            outputs = {"keras": models["keras"](x, training=True).numpy(),
                       "torch": torch_forward(models["torch"], x, training=True)}
            for framework, output in outputs.items():
                check(f"BN training output ({framework})", output, expected)
        exported = {"keras": keras_backend.export_weights(models["keras"])[0],
                    "torch": torch_backend.export_weights(models["torch"])[0]}
        for framework, values in exported.items():
            check(f"BN moving mean after {UPDATES} updates ({framework})", values["moving_mean"], ref.moving_mean)
            check(f"BN moving variance after {UPDATES} updates ({framework})", values["moving_variance"],
                  ref.moving_variance)
        x = PLACEMENT_INPUTS[placement](rng, (BATCH, *shape)).astype(np.float32)
        expected = ref.infer(x)
        check("BN inference output (keras)", models["keras"](x, training=False).numpy(), expected)
        check("BN inference output (torch)", torch_forward(models["torch"], x, training=False), expected)


def check(name: str, actual, expected, tolerance: float = TOLERANCE) -> None:
    difference = relative(actual, expected)
    record_parity(name, difference)
    assert difference <= tolerance, f"{name}: relative difference {difference:.2e} > {tolerance:.0e}"


def test_bn_at_cnn_size_float32_error_is_bounded():
    """At the CNN's size (32 x 24 x 24 values per channel) float32 batch statistics are no longer
    1e-6-exact in either framework; both stay within 1e-4 of the float64 reference."""
    shape, settings = (24, 24, 32), BNSettings()
    x = np.maximum(np.random.default_rng(0).normal(0.0, 1.0, (32, *shape)), 0.0).astype(np.float32)
    state = random_bn_state(np.random.default_rng(1), shape[-1])
    ref = reference.BatchNorm(shape[-1], settings.momentum, settings.epsilon)
    ref.gamma, ref.beta = state["gamma"], state["beta"]
    expected = ref.train_step(x)
    layers = [spec.BatchNorm(settings)]
    keras_out = keras_backend.build_model(layers, shape, [state])(x, training=True).numpy()
    torch_out = torch_forward(torch_backend.build_model(layers, shape, [state]), x, training=True)
    check("BN training output at CNN size, 18 432 values per channel (keras)", keras_out, expected, 1e-4)
    check("BN training output at CNN size, 18 432 values per channel (torch)", torch_out, expected, 1e-4)


@pytest.mark.parametrize("batch", [4, 32])
def test_plain_torch_would_store_the_unbiased_variance(batch):
    """Why the torch backend corrects running_var: plain torch differs from Keras by n / (n - 1)."""
    rng = np.random.default_rng(batch)
    x = rng.normal(3.0, 2.0, (batch, 8)).astype(np.float32)
    plain = torch.nn.BatchNorm1d(8, momentum=1.0)  # Keras momentum 0: moving = last batch
    plain(torch.from_numpy(x))
    ref = reference.BatchNorm(8, momentum=0.0)
    ref.train_step(x)
    np.testing.assert_allclose(plain.running_var.numpy() * (batch - 1) / batch, ref.moving_variance, rtol=1e-5)
    record_parity(f"plain torch running variance vs Keras, batch {batch} (not used)",
                  relative(plain.running_var.numpy(), ref.moving_variance))


def test_reference_follows_the_tf_nn_recipe():
    """The reference equals tf.nn.moments + tf.nn.batch_normalization, the hand-written Keras recipe."""
    import tensorflow as tf

    x = np.random.default_rng(3).normal(2.0, 3.0, (16, 5, 5, 4))
    gamma, beta = np.linspace(0.5, 2.0, 4), np.linspace(-1.0, 1.0, 4)
    mean, variance = tf.nn.moments(tf.constant(x), axes=[0, 1, 2])
    expected = tf.nn.batch_normalization(tf.constant(x), mean, variance, beta, gamma, 1e-3).numpy()
    ref = reference.BatchNorm(4, momentum=0.9)
    ref.gamma, ref.beta = gamma, beta
    np.testing.assert_allclose(ref.train_step(x), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ref.moving_mean, 0.1 * mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ref.moving_variance, 0.9 + 0.1 * variance.numpy(), rtol=1e-12)


# --- whole models -----------------------------------------------------------------------------------

DEFAULT_VARIANTS = yaml.safe_load((REPO / "config.yaml").read_text())["variants"]


def supported_variants(arch: str) -> dict:
    """The default variants that have a meaning on `arch` (spec.unsupported)."""
    return {name: v for name, v in DEFAULT_VARIANTS.items() if not spec.unsupported(arch, v)}


ARCH_DATA = {"mlp": ((2,), 1), "mlp3": ((28, 28), 10), "cnn": ((28, 28), 10), "lstm": ((28, 28), 10)}
STEPS = 20


def perturbed(layers: list, weights: list[dict], seed: int) -> list[dict]:
    """Every array a model uses moved off its initial value (biases, gamma, beta, moving statistics);
    arrays a layer does not have (use_bias, center, scale off) stay at their identity value."""
    rng = np.random.default_rng(seed)
    stateful = [layer for layer in layers if isinstance(layer, (spec.Dense, spec.Conv2D, spec.LSTM, spec.BatchNorm))]
    moved = []
    for layer, entry in zip(stateful, weights, strict=True):
        unused = ({"gamma": not layer.settings.scale, "beta": not layer.settings.center}
                  if isinstance(layer, spec.BatchNorm) else {"bias": not layer.use_bias})
        moved.append({key: value if unused.get(key) else
                      (value + rng.uniform(0.0, 0.1, value.shape) if key == "moving_variance"
                       else value + rng.normal(0.0, 0.05, value.shape)).astype(np.float32)
                      for key, value in entry.items()})
    return moved


def synthetic_data(arch: str, n: int) -> dict:
    """Learnable data of the architecture's input type: circles-like points or 28x28 'images'."""
    shape, outputs = ARCH_DATA[arch]
    rng = np.random.default_rng(7)
    x = rng.uniform(-1.2, 1.2, (n, *shape)) if arch == "mlp" else rng.uniform(0.0, 1.0, (n, *shape))
    if outputs == 1:
        y = (np.hypot(x[:, 0], x[:, 1]) < 0.8).astype(np.float32)
    else:
        y = (x.reshape(n, -1) @ rng.normal(size=(x[0].size, outputs))).argmax(axis=1).astype(np.int64)
    x = x.astype(np.float32)
    return {"x_train": x, "y_train": y, "x_val": x[:64], "y_val": y[:64], "x_test": x[:64], "y_test": y[:64]}


def trainer_run(arch: str, variant: str, nesterov: bool) -> dict:
    return {"arch": arch, "variant": variant, "bn": DEFAULT_VARIANTS[variant], "seed": 3, "batch_size": 32,
            "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": nesterov}}


@pytest.mark.parametrize("arch", ["mlp", "mlp3", "cnn", "lstm"])
def test_weights_copy_exactly_between_frameworks(arch):
    """Keras layout -> torch (transposes, LSTM gates and split bias) -> back: bit for bit."""
    shape, outputs = ARCH_DATA[arch]
    shape = spec.INPUT_SHAPES[arch] or shape
    for variant in supported_variants(arch).values():
        layers = spec.build_spec(arch, variant, outputs)
        weights = perturbed(layers, spec.initial_weights(layers, shape, seed=1), seed=2)
        from_keras = keras_backend.export_weights(keras_backend.build_model(layers, shape, weights))
        from_torch = torch_backend.export_weights(torch_backend.build_model(layers, shape, from_keras))
        assert len(from_keras) == len(from_torch) == len(weights)
        for original, k, t in zip(weights, from_keras, from_torch):
            assert original.keys() == k.keys() == t.keys()
            for key in original:
                np.testing.assert_array_equal(k[key], original[key], err_msg=f"keras {key}")
                np.testing.assert_array_equal(t[key], original[key], err_msg=f"torch {key}")


def sgd_steps(trainer, order: np.ndarray, batch_size: int) -> np.ndarray:
    """One train_epoch call per mini-batch, so each step's loss is seen."""
    return np.array([trainer.train_epoch(order[i:i + batch_size]) for i in range(0, len(order), batch_size)])


@pytest.fixture
def precision(request):
    """Build models in float32 (what the pipeline runs) or float64 (to see the mapping without
    float32 round-off); restores both frameworks' defaults afterwards."""
    import keras

    keras.config.set_floatx(request.param)
    keras.config.set_dtype_policy(request.param)
    torch.set_default_dtype(getattr(torch, request.param))
    yield np.dtype(request.param)
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    torch.set_default_dtype(torch.float32)


def trained_pair(arch: str, variant: str, nesterov: bool, dtype: np.dtype):
    """Keras and torch trainers from the same weights (Keras-loaded, copied into torch) after STEPS
    SGD steps on the same batches; returns (start weights, {framework: (losses, final weights)})."""
    run, trainers, start = trainer_run(arch, variant, nesterov), {}, None
    for framework, backend in (("keras", keras_backend), ("torch", torch_backend)):
        data = {key: value.astype(dtype) if value.dtype.kind == "f" else value
                for key, value in synthetic_data(arch, STEPS * run["batch_size"]).items()}
        shape, outputs = prepare(run, data)
        if start is None:
            layers = spec.build_spec(arch, run["bn"], outputs)
            start = perturbed(layers, spec.initial_weights(layers, shape, run["seed"]), seed=4)
            trainers[framework] = backend.Trainer(run, data, shape, outputs, weights=start)
            start = keras_backend.export_weights(trainers[framework].model)
        else:
            trainers[framework] = backend.Trainer(run, data, shape, outputs, weights=start)
    order = spec.batch_order(run["seed"], 1, STEPS * run["batch_size"])
    backends = {"keras": keras_backend, "torch": torch_backend}
    return start, {name: (sgd_steps(trainer, order, run["batch_size"]), backends[name].export_weights(trainer.model))
                   for name, trainer in trainers.items()}


# CNN variants with BN on the 24x24x32 conv output: in float32 each framework's batch statistics over
# 18 432 values per channel are ~1e-5 off the exact value (both, in different ways; see the README),
# and 20 steps of this loss surface amplify that to percent level. Their float32 check covers the first
# two steps; over 20 steps they are held to the float64 check, which shows the mapping is exact.
FLOAT32_SHORT = {("cnn", variant) for variant, bn in DEFAULT_VARIANTS.items() if bn["placement"] != "none"}


@pytest.mark.parametrize("precision", ["float32", "float64"], indirect=True)
@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
@pytest.mark.parametrize("arch", ["mlp", "mlp3", "cnn", "lstm"])
def test_training_steps_agree_between_frameworks(arch, nesterov, precision):
    """Same weights, same batches: step losses and weights (with BN's moving statistics) agree over
    20 SGD steps, for every default variant. Tolerances (relative) are ~3-10x the largest measured.

    float64 shows the mapping itself: step losses and each array's change since the start within
    1e-4 for mlp, mlp3 and lstm (measured <= 2.1e-5). Not 1e-12, because Keras applies SGD momentum
    as float32 (0.9 -> 0.89999998) even to float64 variables and the steps amplify that 2.6e-8.
    The CNN with BN on its conv output trains in a chaotic regime at the pipeline's learning rate (its
    step losses jump between 1.4 and 14.5 on this data) and amplifies the same 2.6e-8 to 3e-4 in the
    losses and 2.4e-2 in a weight change by step 20: losses 1e-3, changes 5e-2 for it. A mapping
    error lands far above all of these: torch's second LSTM bias left trainable gave 0.95.
    float32 is what the pipeline runs: step losses 1e-3, final weights 1e-2 per array (measured
    <= 1e-4 and <= 3e-3): kernels sum in different orders, and BN's division by small batch deviations
    (ReLU units active for few samples, no gamma to damp them) amplifies that round-off.
    """
    float64 = precision == np.float64
    loss_tolerance = (1e-3 if arch == "cnn" else 1e-4) if float64 else 1e-3
    change_tolerance = 5e-2 if arch == "cnn" else 1e-4
    label = f"{arch} ({'nesterov' if nesterov else 'momentum'}, {precision})"
    for variant in supported_variants(arch):
        start, results = trained_pair(arch, variant, nesterov, precision)
        (keras_losses, keras_final), (torch_losses, torch_final) = results["keras"], results["torch"]
        assert np.isfinite(keras_losses).all() and keras_final[-1]["kernel"].dtype == precision
        if not float64 and (arch, variant) in FLOAT32_SHORT:
            check(f"step losses, first 2 steps, cnn with conv BN ({precision})", torch_losses[:2],
                  keras_losses[:2], 1e-4)  # measured 5.3e-6
            continue
        check(f"step losses, {label}", torch_losses, keras_losses, loss_tolerance)
        for first, k, t in zip(start, keras_final, torch_final, strict=True):
            for key in first:
                if np.array_equal(k[key], first[key]):  # frozen: bit for bit in both
                    np.testing.assert_array_equal(t[key], first[key], err_msg=f"{variant} {key}")
                elif not float64:
                    check(f"weights after {STEPS} steps, {label}", t[key], k[key], 1e-2)
                elif np.abs(k[key] - first[key]).max() > 1e-9 * np.abs(first[key]).max():
                    # (a bias in front of BN has a zero gradient: its 'change' is round-off, skipped)
                    check(f"weight change over {STEPS} steps, {label}", t[key] - first[key],
                          k[key] - first[key], change_tolerance)
