"""BN's train/inference gap (bnbench.training.diagnostics): precise-BN statistics against a NumPy
recomputation, the same diagnostics in both frameworks for the same weights, and the meaning of the gaps."""

import numpy as np
import pytest

from bnbench.training import diagnostics, spec
from bnbench.training.loop import prepare
from conftest import record_parity
from test_parity import ARCH_DATA, BACKENDS, DEFAULT_VARIANTS, TOLERANCE, perturbed, relative, synthetic_data

N = 192  # training samples: six batches of 32


def make_trainer(framework: str, arch: str, variant: str, weights=None, **settings):
    """A trainer on synthetic data of the arch's input type, from `weights` (default: the seed's, perturbed)."""
    run = {"arch": arch, "variant": variant, "bn": DEFAULT_VARIANTS[variant], "seed": 3, "batch_size": 32,
           "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": False}, **settings}
    data = synthetic_data(arch, N)
    shape, outputs = prepare(run, data)
    layers = spec.build_spec(arch, run["bn"], outputs)
    if weights is None:
        weights = perturbed(layers, spec.initial_weights(layers, shape, run["seed"]), seed=4)
    return BACKENDS[framework].Trainer(run, data, shape, outputs, weights=weights), run, layers


def trained(framework: str, arch: str, variant: str, epochs: int = 2):
    """A trainer after `epochs` epochs, so that the moving statistics lag the weights."""
    trainer, run, layers = make_trainer(framework, arch, variant)
    for epoch in range(1, epochs + 1):
        trainer.train_epoch(spec.batch_order(run["seed"], epoch, N))
    return trainer, run, layers


def numpy_population(layers: list, weights: list[dict], x: np.ndarray, epsilon: float) -> list:
    """Precise BN written out in NumPy (float64) for MLPs: each BN layer's input statistics over all of x,
    with every BN layer before it normalising with its own such statistics."""
    x, weights, found = x.reshape(len(x), -1).astype(np.float64) if len(x.shape) > 2 else x.astype(np.float64), iter(weights), []
    for layer in layers:
        if isinstance(layer, spec.Dense):
            w = next(weights)
            x = x @ w["kernel"].astype(np.float64) + w["bias"]
        elif isinstance(layer, spec.ReLU):
            x = np.maximum(x, 0.0)
        elif isinstance(layer, spec.BatchNorm):
            w = next(weights)
            mean, variance = x.mean(axis=0), x.var(axis=0)
            found.append((mean, variance))
            x = (x - mean) / np.sqrt(variance + epsilon) * w["gamma"] + w["beta"]
    return found


@pytest.mark.parametrize("framework", ["keras", "torch"])
@pytest.mark.parametrize("arch, variant", [("mlp", "bn_after"), ("mlp3", "bn_before"), ("mlp3", "bn_after")])
def test_population_statistics_equal_a_numpy_recomputation(framework, arch, variant):
    trainer, run, layers = trained(framework, arch, variant)
    moving = trainer.moving_statistics()
    population = diagnostics.statistics_over(trainer, np.arange(N), moving)
    trainer.set_moving_statistics(moving)
    weights = BACKENDS[framework].export_weights(trainer.model)
    expected = numpy_population(layers, weights, synthetic_data(arch, N)["x_train"], 1e-3)
    assert len(population) == len(expected) == len(moving) >= 1
    for (mean, variance), (want_mean, want_variance) in zip(population, expected):
        for name, got, want in (("mean", mean, want_mean), ("variance", variance, want_variance)):
            record_parity(f"precise-BN {name} against NumPy", relative(got, want))
            assert relative(got, want) <= TOLERANCE, f"{framework} {arch}/{variant} population {name}"
    # the trainer's own statistics are back in place
    for (mean, variance), (now_mean, now_variance) in zip(moving, trainer.moving_statistics()):
        np.testing.assert_array_equal(mean, now_mean)
        np.testing.assert_array_equal(variance, now_variance)


def test_chunking_adds_no_error_beyond_the_forward_passes_round_off(monkeypatch):
    """Other chunks: other float32 matrix products in the framework, the same statistics within the BN tolerance."""
    trainer, run, _ = trained("torch", "mlp3", "bn_after")
    moving = trainer.moving_statistics()
    whole = diagnostics.statistics_over(trainer, np.arange(N), moving)
    monkeypatch.setattr(diagnostics, "FIRST_CHUNK", 7)  # uneven chunks
    monkeypatch.setattr(diagnostics, "CHUNK_VALUES", 700)
    chunked = diagnostics.statistics_over(trainer, np.arange(N), moving)
    for a, b in zip(whole, chunked):
        assert relative(a[0], b[0]) < TOLERANCE and relative(a[1], b[1]) < TOLERANCE


# Every layout BN statistics take: dense features, a sequence's (input BN on mlp3's 28 x 28 rows), conv
# feature maps (channels first in torch), after an LSTM; and batch renormalization.
PARITY_CASES = [("mlp", "bn_after"), ("mlp", "renorm_after"), ("mlp3", "bn_input"), ("cnn", "bn_before"),
                ("lstm", "bn_after")]


@pytest.mark.parametrize("arch, variant", PARITY_CASES)
def test_both_frameworks_give_the_same_diagnostics_for_the_same_weights(arch, variant):
    """Weights (with moving statistics) trained in torch, copied into a Keras and a torch trainer."""
    source, run, _ = trained("torch", arch, variant)
    weights = BACKENDS["torch"].export_weights(source.model)
    results = {}
    for framework in BACKENDS:
        trainer, run, _ = make_trainer(framework, arch, variant, weights=weights)
        moving = trainer.moving_statistics()
        population = diagnostics.statistics_over(trainer, np.arange(N), moving)
        trainer.set_moving_statistics(moving)
        results[framework] = population, diagnostics.bn_diagnostics(trainer, {**run, "epochs": 2}, N, epoch=2)
    (keras_population, keras_gaps), (torch_population, torch_gaps) = results["keras"], results["torch"]
    for (k_mean, k_var), (t_mean, t_var) in zip(keras_population, torch_population, strict=True):
        difference = max(relative(t_mean, k_mean), relative(t_var, k_var))
        record_parity("precise-BN statistics, Keras vs torch", difference)
        assert difference <= TOLERANCE
    assert abs(keras_gaps["population_test_accuracy"] - torch_gaps["population_test_accuracy"]) <= 1 / 64
    for k_layer, t_layer in zip(keras_gaps["bn_statistics"], torch_gaps["bn_statistics"], strict=True):
        assert k_layer["channels"] == t_layer["channels"]
        for key in diagnostics.GAP_KEYS:
            record_parity(f"BN gap {key}, Keras vs torch", abs(k_layer[key] - t_layer[key]))
            assert k_layer[key] == pytest.approx(t_layer[key], rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_the_gaps_mean_what_they_say(framework):
    """With momentum 0 and weights that never move (learning rate 0) the moving statistics are the last
    batch's: that gap is zero. Trained on the whole set as one batch, they are the population's."""
    frozen = {"optimizer": {"name": "sgd", "learning_rate": 0.0, "momentum": 0.0, "nesterov": False}}
    for batch_size, zero in ((32, "last_batch"), (N, "population")):
        trainer, run, _ = make_trainer(framework, "mlp3", "bn_momentum0", batch_size=batch_size, **frozen)
        trainer.train_epoch(spec.batch_order(run["seed"], 1, N))
        before = trainer.evaluate("test")
        found = diagnostics.bn_diagnostics(trainer, {**run, "epochs": 1}, N, epoch=1)
        assert len(found["bn_statistics"]) == 3
        for layer in found["bn_statistics"]:
            assert layer[f"{zero}_mean_gap"] < 1e-4 and layer[f"{zero}_log_std_ratio"] < 1e-4, layer
        assert trainer.evaluate("test") == before  # the moving statistics are put back
    # and with momentum 0.99 after two epochs, both gaps are real
    trainer, run, _ = trained(framework, "mlp3", "bn_after")
    layers = diagnostics.bn_diagnostics(trainer, {**run, "epochs": 2}, N, epoch=2)["bn_statistics"]
    assert all(layer["population_mean_gap"] > 0.01 for layer in layers)


def test_a_network_without_moving_statistics_has_no_diagnostics():
    trainer, run, _ = make_trainer("torch", "mlp", "none")
    assert diagnostics.bn_diagnostics(trainer, {**run, "epochs": 1}, N, epoch=1) == {
        "population_test_loss": None, "population_test_accuracy": None, "bn_statistics": []}


def test_last_batch_is_the_remainder_batch_of_the_last_epoch():
    run = {"seed": 5, "batch_size": 32}
    order = spec.batch_order(5, 4, 100)
    np.testing.assert_array_equal(diagnostics.last_batch_rows(run, 4, 100), order[96:])
    np.testing.assert_array_equal(diagnostics.last_batch_rows({**run, "order_seed": 9}, 4, 96),
                                  spec.batch_order(9, 4, 96)[64:])
