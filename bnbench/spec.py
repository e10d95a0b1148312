"""Framework-neutral model spec: architecture x BN variant -> ordered list of layers.

Both backends build exactly this list, and both start from the same initial weights, drawn here in
NumPy from the run's seed (Keras initialiser formulas), so a seed means the same network in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnbench.bn import BNSettings


@dataclass(frozen=True)
class Dense:
    units: int
    kernel_init: str  # "he_uniform" | "glorot_uniform"; biases start at zero
    use_bias: bool = True


@dataclass(frozen=True)
class BatchNorm:
    settings: BNSettings


@dataclass(frozen=True)
class ReLU:
    pass


# Hidden layer widths and output units per architecture (the outputs are logits).
ARCHS = {"mlp": {"hidden": [50], "outputs": 1}}


def build_spec(arch: str, variant: dict) -> list:
    """Layers for `arch` with BN placed as `variant` says (variant keys as in config.yaml)."""
    bn = BatchNorm(BNSettings.from_variant(variant))
    placement = variant.get("placement", "none")
    layers = [bn] if variant.get("input_bn", False) else []
    for units in ARCHS[arch]["hidden"]:
        layers.append(Dense(units, "he_uniform", use_bias=variant.get("use_bias", True)))
        layers += {"none": [ReLU()], "before": [bn, ReLU()], "after": [ReLU(), bn]}[placement]
    layers.append(Dense(ARCHS[arch]["outputs"], "glorot_uniform"))
    return layers


def _limit(kind: str, fan_in: int, fan_out: int) -> float:
    if kind == "he_uniform":
        return float(np.sqrt(6.0 / fan_in))
    if kind == "glorot_uniform":
        return float(np.sqrt(6.0 / (fan_in + fan_out)))
    raise ValueError(f"unknown initialiser {kind!r}")


def initial_weights(spec: list, n_features: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel [in, out], bias [out]) per Dense layer, float32, Keras layout."""
    rng = np.random.default_rng([seed, 0])
    weights, fan_in = [], n_features
    for layer in spec:
        if isinstance(layer, Dense):
            limit = _limit(layer.kernel_init, fan_in, layer.units)
            kernel = rng.uniform(-limit, limit, size=(fan_in, layer.units)).astype(np.float32)
            weights.append((kernel, np.zeros(layer.units, np.float32)))
            fan_in = layer.units
    return weights


def batch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of one epoch: a fresh permutation per epoch, the same in both frameworks."""
    return np.random.default_rng([seed, 1, epoch]).permutation(n)
