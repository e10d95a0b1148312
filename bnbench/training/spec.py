"""Framework-neutral model spec: architecture x BN variant -> ordered list of layers.

Both backends build exactly this list, and both start from the same initial weights, drawn here in
NumPy from the run's seed with Keras' default formulas (the reference):
  Dense / Conv2D kernels  glorot_uniform (he_uniform for the circles MLP, as in its tutorial)
  LSTM                     glorot_uniform input kernel, orthogonal recurrent kernel,
                           zero bias except the forget gate (1, Keras' unit_forget_bias)
  all other biases         zero; BN gamma 1, beta 0, moving mean 0, moving variance 1
Weights are kept in Keras layout (Dense [in, out], Conv2D [kh, kw, in, out], LSTM gates i, f, c, o);
the torch backend transposes them (its gate order i, f, g, o is the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnbench import BnbenchError
from bnbench.training.bn import BNSettings


@dataclass(frozen=True)
class Dense:
    units: int
    kernel_init: str = "glorot_uniform"  # or "he_uniform"; biases start at zero
    use_bias: bool = True


@dataclass(frozen=True)
class Conv2D:
    filters: int
    kernel_size: int
    use_bias: bool = True  # kernel glorot_uniform, "valid" padding, stride 1


@dataclass(frozen=True)
class LSTM:
    units: int
    use_bias: bool = True  # returns the last output only


@dataclass(frozen=True)
class BatchNorm:
    settings: BNSettings


@dataclass(frozen=True)
class ReLU:
    pass


@dataclass(frozen=True)
class MaxPool:
    size: int = 2


@dataclass(frozen=True)
class Dropout:
    """Drops units in training mode with masks drawn from the run's seed (dropout_masks), the same in both
    frameworks; scales the kept ones by 1 / (1 - rate); the identity in inference mode."""

    rate: float


@dataclass(frozen=True)
class Flatten:
    pass  # flattens in Keras' channels-last (H, W, C) order in both frameworks


# Input shape per architecture (images come as [n, 28, 28]; the backends add the channel axis).
INPUT_SHAPES = {"mlp": None, "mlp3": (28, 28), "cnn": (28, 28, 1), "lstm": (28, 28)}
ARCHS = tuple(INPUT_SHAPES)


def _activation_block(bn: BatchNorm, placement: str) -> list:
    return {"none": [ReLU()], "before": [bn, ReLU()], "after": [ReLU(), bn]}[placement]


def unsupported(arch: str, variant: dict) -> str | None:
    """Why `variant` has no meaning on `arch`, or None. Config validation reports it; build_spec refuses it."""
    if arch == "lstm" and variant.get("placement") == "before":
        return "an LSTM's activations are inside its cell, so BN cannot go before them"
    return None


def build_spec(arch: str, variant: dict, outputs: int = 1, dropout: float = 0.0) -> list:
    """Layers for `arch` with BN placed as `variant` says (keys as in config.yaml) and, with a `dropout`
    rate, a Dropout layer after each hidden block; last layer = logits."""
    if reason := unsupported(arch, variant):
        raise BnbenchError(f"placement {variant['placement']!r} on {arch}: {reason}; use placement after, or "
                           f"skip this variant on {arch} (datasets.<name>.skip)")
    bn = BatchNorm(BNSettings.from_variant(variant))
    placement, use_bias = variant.get("placement", "none"), variant.get("use_bias", True)
    input_bn = [bn] if variant.get("input_bn", False) else []  # per input feature / channel
    drop = [Dropout(float(dropout))] if dropout else []
    layers = [] if arch == "mlp3" else input_bn
    if arch == "mlp":  # the circles tutorial
        layers += [Dense(50, "he_uniform", use_bias), *_activation_block(bn, placement), *drop]
    elif arch == "mlp3":  # input BN normalises each of the 784 pixels
        layers += [Flatten(), *input_bn]
        for units in (300, 200, 100):
            layers += [Dense(units, use_bias=use_bias), *_activation_block(bn, placement), *drop]
    elif arch == "cnn":  # the tutorial: BN only after the second convolution
        layers += [Conv2D(32, 3, use_bias), ReLU(), Conv2D(32, 3, use_bias)]
        layers += {"none": [ReLU()], "before": [bn, ReLU()], "after": [ReLU(), bn]}[placement]
        layers += [MaxPool(2), Flatten(), *drop]  # dropped after flattening: the same unit order in both frameworks
    elif arch == "lstm":  # the tutorial: BN on the LSTM's output (its activations are inside the cell)
        layers += [LSTM(32, use_bias)] + ([bn] if placement == "after" else []) + drop
    else:
        raise BnbenchError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return layers + [Dense(outputs)]


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
    return all(isinstance(layers[i + 1], BatchNorm) for i in biased)


def _uniform(rng, kind: str, shape: tuple, fan_in: int, fan_out: int) -> np.ndarray:
    scale = {"he_uniform": 6.0 / fan_in, "glorot_uniform": 6.0 / (fan_in + fan_out)}[kind]
    limit = np.sqrt(scale)
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


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
    return weights


def _default_weights(spec: list, input_shape: tuple, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, 0])
    weights, shape = [], tuple(input_shape)
    for layer in spec:
        if isinstance(layer, Dense):
            fan_in = shape[-1]
            weights.append({"kernel": _uniform(rng, layer.kernel_init, (fan_in, layer.units), fan_in, layer.units),
                            "bias": np.zeros(layer.units, np.float32)})
        elif isinstance(layer, Conv2D):
            k, c_in = layer.kernel_size, shape[-1]
            weights.append({"kernel": _uniform(rng, "glorot_uniform", (k, k, c_in, layer.filters),
                                               k * k * c_in, k * k * layer.filters),
                            "bias": np.zeros(layer.filters, np.float32)})
        elif isinstance(layer, LSTM):
            n_in, units = shape[-1], layer.units
            bias = np.zeros(4 * units, np.float32)
            bias[units:2 * units] = 1.0 if layer.use_bias else 0.0  # forget gate
            weights.append({"kernel": _uniform(rng, "glorot_uniform", (n_in, 4 * units), n_in, 4 * units),
                            "recurrent": _orthogonal(rng, units, 4 * units), "bias": bias})
        elif isinstance(layer, BatchNorm):
            ones = np.ones(shape[-1], np.float32)
            weights.append({"gamma": ones, "beta": 0 * ones, "moving_mean": 0 * ones, "moving_variance": ones})
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
