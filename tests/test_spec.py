import numpy as np
import pytest

from bnbench import BnbenchError
from bnbench.training import spec
from bnbench.training.spec import BatchNorm, Dense, ReLU, batch_order, build_spec, initial_weights, unsupported


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
    (k1, b1), (k2, b2) = [(w["kernel"], w["bias"]) for w in initial_weights(layers, (2,), seed=3)]
    assert k1.shape == (2, 50) and k2.shape == (50, 1) and k1.dtype == np.float32
    assert np.abs(k1).max() <= np.sqrt(6 / 2) and np.abs(k1).max() > 0.8 * np.sqrt(6 / 2)
    assert np.abs(k2).max() <= np.sqrt(6 / 51)
    assert not b1.any() and not b2.any()
    np.testing.assert_array_equal(initial_weights(layers, (2,), seed=3)[0]["kernel"], k1)
    assert not np.array_equal(initial_weights(layers, (2,), seed=4)[0]["kernel"], k1)


def test_batch_order_is_a_fresh_permutation_per_epoch_and_seed():
    first, second = batch_order(1, 1, 100), batch_order(1, 2, 100)
    assert sorted(first) == list(range(100))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, batch_order(2, 1, 100))
    np.testing.assert_array_equal(first, batch_order(1, 1, 100))
    assert ReLU() == ReLU()


@pytest.mark.parametrize(
    "arch, variant, expected",
    [
        ("mlp3", {"placement": "before"}, ["Flatten"] + ["Dense", "BatchNorm", "ReLU"] * 3 + ["Dense"]),
        ("mlp3", {"placement": "none", "input_bn": True}, ["Flatten", "BatchNorm"] + ["Dense", "ReLU"] * 3 + ["Dense"]),
        ("cnn", {"placement": "after"},
         ["Conv2D", "ReLU", "Conv2D", "ReLU", "BatchNorm", "MaxPool", "Flatten", "Dense"]),
        ("cnn", {"placement": "before"},
         ["Conv2D", "ReLU", "Conv2D", "BatchNorm", "ReLU", "MaxPool", "Flatten", "Dense"]),
        ("cnn", {"placement": "none"}, ["Conv2D", "ReLU", "Conv2D", "ReLU", "MaxPool", "Flatten", "Dense"]),
        ("lstm", {"placement": "after"}, ["LSTM", "BatchNorm", "Dense"]),
        ("lstm", {"placement": "none"}, ["LSTM", "Dense"]),
    ],
)
def test_fashion_architectures(arch, variant, expected):
    assert kinds(build_spec(arch, variant, outputs=10)) == expected


def test_bn_before_an_lstm_is_refused():
    """The LSTM's activations are inside its cell: 'before' would silently duplicate 'after'."""
    assert unsupported("lstm", {"placement": "before"}) and unsupported("lstm", {"placement": "after"}) is None
    assert all(unsupported(arch, {"placement": "before"}) is None for arch in ("mlp", "mlp3", "cnn"))
    with pytest.raises(BnbenchError, match="this variant on lstm: an LSTM's activations are inside its cell"):
        build_spec("lstm", {"placement": "before"}, outputs=10)


def test_normalizers_build_the_layers_they_name():
    def kinds(arch, variant, dropout=0.0):
        return [type(layer).__name__ for layer in build_spec(arch, variant, 10, dropout)]

    assert kinds("mlp", {"placement": "after", "norm": "layer"}) == ["Dense", "ReLU", "LayerNorm", "Dense"]
    assert kinds("mlp", {"placement": "before", "norm": "group", "groups": 5}) == ["Dense", "GroupNorm", "ReLU", "Dense"]
    renorm = build_spec("mlp", {"placement": "after", "norm": "renorm", "rmax": 3}, 1)[2]
    assert renorm.renorm.rmax == 3 and renorm.renorm.rmin is None and renorm.renorm.clipping() == {"rmax": 3.0}
    # weight norm: every hidden kernel, no layer; the output layer stays plain
    dense = [layer for layer in build_spec("mlp3", {"placement": "after", "norm": "weight"}, 10) if isinstance(layer, Dense)]
    assert [d.weight_norm for d in dense] == [True, True, True, False]
    # selu: SELU activations, LeCun-normal kernels throughout, AlphaDropout
    layers = build_spec("mlp", {"placement": "none", "activation": "selu"}, 1, dropout=0.2)
    assert kinds("mlp", {"placement": "none", "activation": "selu"}, 0.2) == ["Dense", "SELU", "Dropout", "Dense"]
    assert layers[2].alpha and {layer.kernel_init for layer in layers if isinstance(layer, Dense)} == {"lecun_normal"}
    # BN before or after the max-pooling
    assert kinds("cnn", {"placement": "after"})[3:6] == ["ReLU", "BatchNorm", "MaxPool"]
    assert kinds("cnn", {"placement": "after", "pool_placement": "after"})[3:6] == ["ReLU", "MaxPool", "BatchNorm"]
    # a weight-normalized kernel starts where the plain one does: g = ||v||
    plain = spec.initial_weights(build_spec("mlp", {"placement": "none"}, 1), (2,), seed=4)
    normed = spec.initial_weights(build_spec("mlp", {"placement": "after", "norm": "weight"}, 1), (2,), seed=4)
    np.testing.assert_array_equal(normed[0]["kernel"], plain[0]["kernel"])
    np.testing.assert_allclose(normed[0]["g"], np.linalg.norm(plain[0]["kernel"], axis=0), rtol=1e-6)


@pytest.mark.parametrize("arch, variant, reason", [
    ("lstm", {"placement": "none", "activation": "selu"}, "so selu cannot replace them"),
    ("lstm", {"placement": "after", "norm": "weight"}, "bnbench does not weight-normalize LSTM kernels"),
    ("mlp3", {"placement": "after", "pool_placement": "after"}, "mlp3 has no pooling layer"),
    ("cnn", {"placement": "after", "norm": "group", "groups": 5}, "groups 5 does not divide the 32 units"),
    ("mlp3", {"placement": "after", "norm": "group", "groups": 3}, "groups 3 does not divide the 200 units"),
    ("lstm", {"placement": "after", "norm": "group", "groups": 32}, "groups 32 leaves fewer than 4 units per group"),
])
def test_normalizer_settings_without_meaning_on_an_arch(arch, variant, reason):
    assert reason in unsupported(arch, variant)
    assert unsupported("mlp", {"placement": "after", "norm": "group", "groups": 5}) is None
    assert unsupported("cnn", {"placement": "after", "norm": "group", "groups": 32}) is None  # 12 x 12 values each


def test_mlp3_widths_and_bias_switch():
    dense = [layer for layer in build_spec("mlp3", {"placement": "before", "use_bias": False}, 10)
             if isinstance(layer, Dense)]
    assert [(d.units, d.use_bias, d.kernel_init) for d in dense] == [
        (300, False, "glorot_uniform"), (200, False, "glorot_uniform"), (100, False, "glorot_uniform"),
        (10, True, "glorot_uniform")]


def test_lstm_initialisers_match_keras_defaults():
    layers = build_spec("lstm", {"placement": "none"}, 10)
    lstm, out = initial_weights(layers, (28, 28), seed=5)
    assert lstm["kernel"].shape == (28, 128) and lstm["recurrent"].shape == (32, 128)
    # Orthogonal recurrent kernel: its rows are orthonormal.
    np.testing.assert_allclose(lstm["recurrent"] @ lstm["recurrent"].T, np.eye(32), atol=1e-5)
    assert (lstm["bias"][32:64] == 1).all() and not lstm["bias"][:32].any() and not lstm["bias"][64:].any()
    assert np.abs(lstm["kernel"]).max() <= np.sqrt(6 / (28 + 128))
    assert out["kernel"].shape == (32, 10)


def test_cnn_weight_shapes_follow_keras_layout():
    conv1, conv2, bn, dense = initial_weights(build_spec("cnn", {"placement": "after"}, 10), (28, 28, 1), seed=1)
    assert conv1["kernel"].shape == (3, 3, 1, 32) and conv2["kernel"].shape == (3, 3, 32, 32)
    assert (bn["gamma"] == 1).all() and not bn["beta"].any() and bn["moving_variance"].shape == (32,)
    assert dense["kernel"].shape == (12 * 12 * 32, 10)
    assert np.abs(conv2["kernel"]).max() <= np.sqrt(6 / (9 * 32 + 9 * 32))


def test_a_bias_that_feeds_bn_directly_changes_nothing():
    from bnbench.training.spec import same_as_with_bias

    before_nobias, after_nobias = {"placement": "before", "use_bias": False}, {"placement": "after", "use_bias": False}
    assert same_as_with_bias("mlp", before_nobias) and same_as_with_bias("mlp3", before_nobias)
    assert not same_as_with_bias("cnn", before_nobias)  # the first convolution's bias feeds a ReLU
    assert not same_as_with_bias("mlp", after_nobias) and not same_as_with_bias("lstm", after_nobias)
    assert not same_as_with_bias("mlp", {"placement": "before"})


def test_init_scale_multiplies_every_kernel_and_nothing_else():
    for arch, shape in (("mlp", (2,)), ("mlp3", (28, 28)), ("cnn", (28, 28, 1)), ("lstm", (28, 28))):
        layers = spec.build_spec(arch, {"placement": "after", "input_bn": arch != "mlp3"}, 10)
        default, scaled = (spec.initial_weights(layers, shape, seed=4, init_scale=factor) for factor in (1.0, 0.25))
        for plain, times in zip(default, scaled, strict=True):
            for key, value in plain.items():
                expected = value * np.float32(0.25) if key in ("kernel", "recurrent") else value
                np.testing.assert_array_equal(times[key], expected, err_msg=f"{arch} {key}")
                assert times[key].dtype == np.float32


def test_dropout_layers_follow_each_hidden_block():
    for arch, blocks in (("mlp", 1), ("mlp3", 3), ("cnn", 1), ("lstm", 1)):
        layers = spec.build_spec(arch, {"placement": "after"}, 10, dropout=0.2)
        drops = [i for i, layer in enumerate(layers) if isinstance(layer, spec.Dropout)]
        assert len(drops) == blocks and all(layers[i].rate == 0.2 for i in drops)
        assert isinstance(layers[drops[-1] + 1], spec.Dense)  # the next block (or the logits) follows
        assert not any(isinstance(layer, spec.Dropout) for layer in spec.build_spec(arch, {"placement": "after"}, 10))
    widths = spec.dropouts(spec.build_spec("mlp3", {"placement": "none"}, 10, dropout=0.5), (28, 28))
    assert widths == [(0.5, 300), (0.5, 200), (0.5, 100)]


def test_dropout_masks_come_from_the_seed_and_epoch():
    layers = [(0.3, 50), (0.5, 7)]
    first = spec.dropout_masks(seed=1, epoch=1, n=10_000, layers=layers)
    again = spec.dropout_masks(seed=1, epoch=1, n=10_000, layers=layers)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert [m.shape for m in first] == [(10_000, 50), (10_000, 7)] and first[0].dtype == bool
    assert first[0].mean() == pytest.approx(0.7, abs=0.01) and first[1].mean() == pytest.approx(0.5, abs=0.01)
    for other in (spec.dropout_masks(2, 1, 10_000, layers), spec.dropout_masks(1, 2, 10_000, layers)):
        assert not np.array_equal(other[0], first[0])
    assert spec.dropout_masks(1, 1, 10_000, []) == []
    assert spec.keep_scale(0.3) == np.float32(1 / 0.7)
