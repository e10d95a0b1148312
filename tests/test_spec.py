import numpy as np
import pytest

from bnbench.spec import BatchNorm, Dense, ReLU, batch_order, build_spec, initial_weights


def kinds(layers):
    return [type(layer).__name__ for layer in layers]


@pytest.mark.parametrize(
    "variant, expected",
    [
        ({"placement": "none"}, ["Dense", "ReLU", "Dense"]),
        ({"placement": "after"}, ["Dense", "ReLU", "BatchNorm", "Dense"]),
        ({"placement": "before"}, ["Dense", "BatchNorm", "ReLU", "Dense"]),
        ({"placement": "none", "input_bn": True}, ["BatchNorm", "Dense", "ReLU", "Dense"]),
    ],
)
def test_placement(variant, expected):
    assert kinds(build_spec("mlp", variant)) == expected


def test_tutorial_initialisers_and_bias_switch():
    layers = build_spec("mlp", {"placement": "before", "use_bias": False, "momentum": 0.0})
    hidden, out = [layer for layer in layers if isinstance(layer, Dense)]
    assert (hidden.units, hidden.kernel_init, hidden.use_bias) == (50, "he_uniform", False)
    assert (out.units, out.kernel_init, out.use_bias) == (1, "glorot_uniform", True)
    assert next(layer for layer in layers if isinstance(layer, BatchNorm)).settings.momentum == 0.0


def test_initial_weights_follow_keras_limits_and_seed():
    layers = build_spec("mlp", {"placement": "none"})
    (k1, b1), (k2, b2) = initial_weights(layers, 2, seed=3)
    assert k1.shape == (2, 50) and k2.shape == (50, 1) and k1.dtype == np.float32
    assert np.abs(k1).max() <= np.sqrt(6 / 2) and np.abs(k1).max() > 0.8 * np.sqrt(6 / 2)
    assert np.abs(k2).max() <= np.sqrt(6 / 51)
    assert not b1.any() and not b2.any()
    np.testing.assert_array_equal(initial_weights(layers, 2, seed=3)[0][0], k1)
    assert not np.array_equal(initial_weights(layers, 2, seed=4)[0][0], k1)


def test_batch_order_is_a_fresh_permutation_per_epoch_and_seed():
    first, second = batch_order(1, 1, 100), batch_order(1, 2, 100)
    assert sorted(first) == list(range(100))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, batch_order(2, 1, 100))
    np.testing.assert_array_equal(first, batch_order(1, 1, 100))
    assert ReLU() == ReLU()
