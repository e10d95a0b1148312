"""Framework-neutral model spec: architecture x variant (normalization, placement, activation) -> ordered
list of layers.

Both backends build exactly this list, and both start from the same initial weights, drawn here in
NumPy from the run's seed with Keras' default formulas (the reference):
  Dense / Conv2D kernels  glorot_uniform (he_uniform for the circles MLP, as in its tutorial; lecun_normal
                           everywhere in a selu network, as in the SELU paper)
  LSTM                     glorot_uniform input kernel, orthogonal recurrent kernel,
                           zero bias except the forget gate (1, Keras' unit_forget_bias)
  all other biases         zero; norm gamma 1, beta 0, BN moving mean 0 and variance 1 (renorm: moving std,
                           renorm std 1, renorm mean 0); weight norm's g = ||v|| (the kernel's initial norm)
Weights are kept in Keras layout (Dense [in, out], Conv2D [kh, kw, in, out], LSTM gates i, f, c, o);
the torch backend transposes them (its gate order i, f, g, o is the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnbench import BnbenchError
from bnbench.training.bn import BNSettings, RenormSettings


@dataclass(frozen=True)
class Dense:
    units: int
    kernel_init: str = "glorot_uniform"  # or "he_uniform", "lecun_normal"; biases start at zero
    use_bias: bool = True
    weight_norm: bool = False  # kernel = g * v / ||v|| (bn.py); weights then also hold "g"


@dataclass(frozen=True)
class Conv2D:
    filters: int
    kernel_size: int
    use_bias: bool = True  # "valid" padding, stride 1
    kernel_init: str = "glorot_uniform"
    weight_norm: bool = False


@dataclass(frozen=True)
class LSTM:
    units: int
    use_bias: bool = True  # returns the last output only


@dataclass(frozen=True)
class BatchNorm:
    settings: BNSettings
    renorm: RenormSettings | None = None  # batch renormalization (bn.py)


@dataclass(frozen=True)
class LayerNorm:
    settings: BNSettings  # epsilon, center, scale (no moving statistics)


@dataclass(frozen=True)
class GroupNorm:
    settings: BNSettings
    groups: int


NORM_LAYERS = (BatchNorm, LayerNorm, GroupNorm)


@dataclass(frozen=True)
class ReLU:
    pass


@dataclass(frozen=True)
class SELU:
    pass  # scale * (x if x > 0 else alpha * (exp(x) - 1)), Klambauer et al. 2017's constants


@dataclass(frozen=True)
class MaxPool:
    size: int = 2


@dataclass(frozen=True)
class Dropout:
    """Drops units in training mode with masks drawn from the run's seed (dropout_masks), the same in both
    frameworks; scales the kept ones by 1 / (1 - rate); the identity in inference mode."""

    rate: float
    alpha: bool = False  # AlphaDropout (SELU networks): dropped units -> alpha', then a * x + b (alpha_dropout_affine)


@dataclass(frozen=True)
class Flatten:
    pass  # flattens in Keras' channels-last (H, W, C) order in both frameworks


STATEFUL = (Dense, Conv2D, LSTM, *NORM_LAYERS)  # the layers with an entry in initial_weights, in order

# Input shape per architecture (images come as [n, 28, 28]; the backends add the channel axis).
INPUT_SHAPES = {"mlp": None, "mlp3": (28, 28), "cnn": (28, 28, 1), "lstm": (28, 28)}
ARCHS = tuple(INPUT_SHAPES)


# The hidden layers' widths a normalization layer sees on each architecture (group norm's groups divide them).
NORMALIZED_FEATURES = {"mlp": (50,), "mlp3": (300, 200, 100), "cnn": (32,), "lstm": (32,)}


def _activation_block(norm, placement: str, activation) -> list:
    if norm is None:  # no normalization layer (placement none, or weight norm: it lives in the kernels)
        return [activation]
    return [norm, activation] if placement == "before" else [activation, norm]


def norm_layer(variant: dict):
    """The variant's normalization layer (None for weight norm, which reparametrises the kernels)."""
    settings, kind = BNSettings.from_variant(variant), variant.get("norm", "batch")
    if kind == "batch":
        return BatchNorm(settings)
    if kind == "renorm":
        return BatchNorm(settings, RenormSettings.from_variant(variant))
    if kind == "layer":
        return LayerNorm(settings)
    if kind == "group":
        return GroupNorm(settings, int(variant["groups"]))
    return None


def unsupported(arch: str, variant: dict) -> str | None:
    """Why `variant` has no meaning on `arch`, or None (each reason names the change that gives it one).
    Config validation reports it; build_spec refuses it."""
    placement, norm = variant.get("placement", "none"), variant.get("norm", "batch")
    if arch == "lstm" and placement == "before":
        return ("an LSTM's activations are inside its cell, so BN cannot go before them; use placement after, "
                "or skip this variant on lstm")
    if arch == "lstm" and variant.get("activation", "relu") != "relu":
        return "an LSTM's activations are inside its cell, so selu cannot replace them; skip this variant on lstm"
    if arch == "lstm" and norm == "weight" and placement != "none":
        return "bnbench does not weight-normalize LSTM kernels; skip this variant on lstm"
    if "pool_placement" in variant and arch != "cnn":
        return f"{arch} has no pooling layer (pool_placement is for cnn); skip this variant on {arch}"
    if norm == "group" and placement != "none" and variant.get("groups"):
        return _group_problem(arch, variant["groups"])
    return None


# Group norm over fewer values than this per sample is degenerate: a group of one unit is that unit minus
# itself (the layer outputs beta whatever the input, and no gradient passes), of two units each one is +-1.
MIN_GROUP_VALUES = 4


def _group_problem(arch: str, groups: int) -> str | None:
    widths = NORMALIZED_FEATURES.get(arch, ())
    positions = 1 if arch != "cnn" else 12 * 12  # a conv map's channel has (at least) 12 x 12 values
    good = [g for g in range(1, max(widths) + 1)
            if all(n % g == 0 and n // g * positions >= MIN_GROUP_VALUES for n in widths)]
    odd = next((n for n in widths if n % groups), None)
    if odd is None and groups in good:
        return None
    why = (f"does not divide the {odd} units of a normalized layer of {arch}" if odd else
           f"leaves fewer than {MIN_GROUP_VALUES} units per group in a normalized layer of {arch} (a group norm "
           f"over so few values erases them)")
    return f"groups {groups} {why}; use one of {', '.join(map(str, good))}, or skip this variant on {arch}"


def build_spec(arch: str, variant: dict, outputs: int = 1, dropout: float = 0.0) -> list:
    """Layers for `arch` with the normalization placed as `variant` says (keys as in config.yaml) and, with
    a `dropout` rate, a Dropout layer after each hidden block (AlphaDropout in a selu network); last layer
    = logits."""
    if arch not in ARCHS:
        raise BnbenchError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if reason := unsupported(arch, variant):
        raise BnbenchError(f"this variant on {arch}: {reason} (datasets.<name>.skip)")
    placement, use_bias = variant.get("placement", "none"), variant.get("use_bias", True)
    norm = norm_layer(variant)
    weight_norm = norm is None and placement != "none"  # every hidden kernel
    selu = variant.get("activation", "relu") == "selu"
    act, init = (SELU(), "lecun_normal") if selu else (ReLU(), None)  # SELU: LeCun-normal kernels throughout
    block_norm = None if placement == "none" else norm
    input_bn = [norm] if variant.get("input_bn", False) else []  # per input feature / channel
    drop = [Dropout(float(dropout), alpha=selu)] if dropout else []
    layers = [] if arch == "mlp3" else input_bn
    if arch == "mlp":  # the circles tutorial
        layers += [Dense(50, init or "he_uniform", use_bias, weight_norm), *_activation_block(block_norm, placement, act),
                   *drop]
    elif arch == "mlp3":  # input BN normalises each of the 784 pixels
        layers += [Flatten(), *input_bn]
        for units in (300, 200, 100):
            layers += [Dense(units, init or "glorot_uniform", use_bias, weight_norm),
                       *_activation_block(block_norm, placement, act), *drop]
    elif arch == "cnn":  # the tutorial: BN only after the second convolution, before or after the pooling
        conv = dict(use_bias=use_bias, kernel_init=init or "glorot_uniform", weight_norm=weight_norm)
        layers += [Conv2D(32, 3, **conv), act, Conv2D(32, 3, **conv)]
        if variant.get("pool_placement", "before") == "after" and block_norm is not None:
            layers += [act, MaxPool(2), block_norm]
        else:
            layers += [*_activation_block(block_norm, placement, act), MaxPool(2)]
        layers += [Flatten(), *drop]  # dropped after flattening: the same unit order in both frameworks
    elif arch == "lstm":  # the tutorial: BN on the LSTM's output (its activations are inside the cell)
        layers += [LSTM(32, use_bias)] + ([block_norm] if block_norm is not None else []) + drop
    return layers + [Dense(outputs, init or "glorot_uniform")]


def same_as_with_bias(arch: str, variant: dict) -> bool:
    """Does `variant` (use_bias false) train the same network as with biases? True when every hidden layer's
    bias would feed a BN layer directly: BN subtracts the batch mean, so such a bias has no effect (and a
    zero gradient). Then comparing the two is a sanity check of the frameworks, not a finding."""
    if variant.get("use_bias", True) or unsupported(arch, variant):
        return False
    layers = build_spec(arch, {**variant, "use_bias": True})
    if any(isinstance(layer, LSTM) for layer in layers):  # its bias acts inside the cell, before the gates
        return False
    biased = [i for i, layer in enumerate(layers[:-1]) if isinstance(layer, (Dense, Conv2D))]
    # (batch renormalization's correction d depends on the batch mean, and so on such a bias)
    return all(isinstance(layers[i + 1], BatchNorm) and layers[i + 1].renorm is None for i in biased)


def _kernel(rng, kind: str, shape: tuple, fan_in: int, fan_out: int) -> np.ndarray:
    """Keras' initialisers: he_uniform, glorot_uniform, lecun_normal (a normal of std sqrt(1 / fan_in) /
    0.8796, truncated at 2 std: Keras' VarianceScaling; redrawn outside, as TensorFlow's truncated normal)."""
    if kind == "lecun_normal":
        std = np.sqrt(1.0 / fan_in) / 0.87962566103423978
        values = rng.normal(0.0, std, size=shape)
        while (outside := np.abs(values) > 2 * std).any():
            values[outside] = rng.normal(0.0, std, size=int(outside.sum()))
        return values.astype(np.float32)
    scale = {"he_uniform": 6.0 / fan_in, "glorot_uniform": 6.0 / (fan_in + fan_out)}[kind]
    limit = np.sqrt(scale)
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def kernel_norm(kernel: np.ndarray) -> np.ndarray:
    """||v|| per output unit (the last axis, Keras layout), float32: weight norm's initial g."""
    axes = tuple(range(kernel.ndim - 1))
    return np.sqrt(np.sum(np.square(kernel, dtype=np.float64), axis=axes)).astype(np.float32)


def _orthogonal(rng, rows: int, cols: int) -> np.ndarray:
    """Keras' Orthogonal initialiser (gain 1) for a [rows, cols] matrix."""
    a = rng.normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return (q.T if rows < cols else q).astype(np.float32)


def output_shape(layer, shape: tuple) -> tuple:
    """Shape of one sample after `layer` (channels last)."""
    if isinstance(layer, Dense):
        return (layer.units,)
    if isinstance(layer, Conv2D):
        return (shape[0] - layer.kernel_size + 1, shape[1] - layer.kernel_size + 1, layer.filters)
    if isinstance(layer, MaxPool):
        return (shape[0] // layer.size, shape[1] // layer.size, shape[2])
    if isinstance(layer, Flatten):
        return (int(np.prod(shape)),)
    if isinstance(layer, LSTM):
        return (layer.units,)
    return shape


def norm_weights(layer, shape: tuple) -> dict:
    """A normalization layer's initial state for samples of channels-last `shape`: gamma 1, beta 0 (per
    channel; layer norm: per feature of the whole sample shape), BN's moving mean 0 and variance 1, and
    renorm's moving std, renorm mean and renorm std (1, 0, 1: Keras' initial values)."""
    ones = np.ones(tuple(shape) if isinstance(layer, LayerNorm) else shape[-1:], np.float32)
    state = {"gamma": ones, "beta": 0 * ones}
    if isinstance(layer, BatchNorm):
        state.update(moving_mean=0 * ones, moving_variance=ones)
        if layer.renorm is not None:
            state.update({key: value * ones for key, value in RENORM_STATE.items()})
    return state


# Batch renorm's state beyond BN's moving mean and variance, in Keras' variable order, with its initial values.
RENORM_STATE = {"moving_stddev": 1.0, "renorm_mean": 0.0, "renorm_stddev": 1.0}
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def alpha_dropout_affine(rate: float) -> tuple[np.float32, np.float32, np.float32]:
    """AlphaDropout's constants in float32 (Keras' formulas): dropped units are set to alpha' = -scale * alpha,
    then y = a * x + b keeps mean 0 and variance 1: a = ((1 - rate)(1 + rate alpha'^2))^-1/2, b = -a alpha' rate."""
    alpha_p = -SELU_ALPHA * SELU_SCALE
    a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
    return np.float32(alpha_p), np.float32(a), np.float32(-a * alpha_p * rate)


def run_layers(run: dict, outputs: int) -> list:
    """The spec of a run's network (its arch, BN variant and dropout rate)."""
    return build_spec(run["arch"], run["bn"], outputs, run.get("dropout", 0.0))


def run_weights(run: dict, layers: list, input_shape: tuple) -> list[dict]:
    """A run's initial weights: drawn from its seed, kernels times its init_scale."""
    return initial_weights(layers, input_shape, run["seed"], run.get("init_scale", 1.0))


def initial_weights(spec: list, input_shape: tuple, seed: int, init_scale: float = 1.0) -> list[dict]:
    """Per layer with state, in order, float32: Dense / Conv2D {"kernel", "bias"}, LSTM {"kernel",
    "recurrent", "bias"}, BatchNorm {"gamma", "beta", "moving_mean", "moving_variance"}. Every kernel is
    multiplied by `init_scale` (in float32, once, here: both frameworks start from these very values)."""
    weights = _default_weights(spec, input_shape, seed)
    if init_scale != 1.0:
        factor = np.float32(init_scale)
        for entry in weights:
            for key in ("kernel", "recurrent"):
                if key in entry:
                    entry[key] = entry[key] * factor
    stateful = [layer for layer in spec if isinstance(layer, STATEFUL)]
    for layer, entry in zip(stateful, weights, strict=True):
        if getattr(layer, "weight_norm", False):  # g = ||v||: the effective kernel starts at v
            entry["g"] = kernel_norm(entry["kernel"])
    return weights


def _default_weights(spec: list, input_shape: tuple, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, 0])
    weights, shape = [], tuple(input_shape)
    for layer in spec:
        if isinstance(layer, Dense):
            fan_in = shape[-1]
            weights.append({"kernel": _kernel(rng, layer.kernel_init, (fan_in, layer.units), fan_in, layer.units),
                            "bias": np.zeros(layer.units, np.float32)})
        elif isinstance(layer, Conv2D):
            k, c_in = layer.kernel_size, shape[-1]
            weights.append({"kernel": _kernel(rng, layer.kernel_init, (k, k, c_in, layer.filters),
                                              k * k * c_in, k * k * layer.filters),
                            "bias": np.zeros(layer.filters, np.float32)})
        elif isinstance(layer, LSTM):
            n_in, units = shape[-1], layer.units
            bias = np.zeros(4 * units, np.float32)
            bias[units:2 * units] = 1.0 if layer.use_bias else 0.0  # forget gate
            weights.append({"kernel": _kernel(rng, "glorot_uniform", (n_in, 4 * units), n_in, 4 * units),
                            "recurrent": _orthogonal(rng, units, 4 * units), "bias": bias})
        elif isinstance(layer, NORM_LAYERS):
            weights.append(norm_weights(layer, shape))
        shape = output_shape(layer, shape)
    return weights


def batch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of one epoch: a fresh permutation per epoch, the same in both frameworks."""
    return np.random.default_rng([seed, 1, epoch]).permutation(n)


def dropouts(spec: list, input_shape: tuple) -> list[tuple[float, int]]:
    """(rate, units per sample) of each Dropout layer of the spec, in order."""
    found, shape = [], tuple(input_shape)
    for layer in spec:
        if isinstance(layer, Dropout):
            found.append((layer.rate, int(np.prod(shape))))
        shape = output_shape(layer, shape)
    return found


MASK_ROWS = 4096  # dropout masks are drawn this many samples at a time (bounded memory on any dataset)


def dropout_masks(seed: int, epoch: int, n: int, layers: list[tuple[float, int]]) -> list[np.ndarray]:
    """One epoch's dropout masks, drawn from the seed like the batch order: per Dropout layer (rate, units)
    a bool [n, units] array, row i for training sample i, True where the unit is kept (a uniform draw >=
    rate). Both frameworks turn it into 0 or 1 / (1 - rate) in float32 and multiply the activations by it:
    the same masks, the same products."""
    rng = np.random.default_rng([seed, 2, epoch])
    masks = []
    for rate, units in layers:
        mask = np.empty((n, units), bool)
        for first in range(0, n, MASK_ROWS):
            rows = min(MASK_ROWS, n - first)
            mask[first:first + rows] = rng.random((rows, units), dtype=np.float32) >= np.float32(rate)
        masks.append(mask)
    return masks


def keep_scale(rate: float) -> np.float32:
    """The factor on kept units, 1 / (1 - rate), in float32 (the same number in both frameworks)."""
    return np.float32(1.0 / (1.0 - rate))
