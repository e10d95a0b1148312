"""Batch normalization and the rest of the family written out in NumPy (float64): the yardstick both
frameworks are tested against (batch renormalization, layer, group and weight normalization, SELU and
AlphaDropout are at the end).

It follows the hand-written recipe `tf.nn.moments` + `tf.nn.batch_normalization`, in Keras' convention:
statistics over every axis but the last (the batch for [N, F]; batch and positions for [N, H, W, C]
and [N, T, F]), the biased batch variance, and moving averages moving = momentum * moving +
(1 - momentum) * batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnbench.training.bn import BNSettings
from bnbench.training.spec import SELU_ALPHA, SELU_SCALE


def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and biased variance over all axes but the last (tf.nn.moments)."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    return mean, ((x - mean) ** 2).mean(axis=axes)


def normalize(x, mean, variance, gamma, beta, epsilon: float) -> np.ndarray:
    """(x - mean) / sqrt(variance + epsilon) * gamma + beta (tf.nn.batch_normalization)."""
    return (np.asarray(x, np.float64) - mean) / np.sqrt(variance + epsilon) * gamma + beta


@dataclass
class BatchNorm:
    """One BN layer's state: gamma, beta, moving mean and variance (identity / 0 / 1 at the start)."""

    features: int
    momentum: float = BNSettings.momentum
    epsilon: float = BNSettings.epsilon

    def __post_init__(self):
        self.gamma, self.beta = np.ones(self.features), np.zeros(self.features)
        self.moving_mean, self.moving_variance = np.zeros(self.features), np.ones(self.features)

    def train_step(self, x: np.ndarray) -> np.ndarray:
        """Training mode: normalise with the batch statistics, then update the moving ones."""
        mean, variance = moments(x)
        self.moving_mean = self.momentum * self.moving_mean + (1 - self.momentum) * mean
        self.moving_variance = self.momentum * self.moving_variance + (1 - self.momentum) * variance
        return normalize(x, mean, variance, self.gamma, self.beta, self.epsilon)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Inference mode: normalise with the moving statistics."""
        return normalize(x, self.moving_mean, self.moving_variance, self.gamma, self.beta, self.epsilon)


@dataclass
class BatchRenorm(BatchNorm):
    """Batch renormalization as Keras 3 computes it (bn.RenormSettings): in training the batch statistics
    normalise, corrected by r = clip(std_B / renorm_std, rmin, rmax) and d = clip((mean_B - renorm_mean) /
    renorm_std, -dmax, dmax), renorm_std floored at sqrt(epsilon); then the renorm and moving statistics move
    (the moving std, from which the moving variance = max(std^2 - epsilon, 0) follows). Inference as BN."""

    rmax: float | None = None
    rmin: float | None = None
    dmax: float | None = None
    renorm_momentum: float = 0.99

    def __post_init__(self):
        super().__post_init__()
        self.moving_stddev, self.renorm_mean, self.renorm_stddev = (np.ones(self.features), np.zeros(self.features),
                                                                    np.ones(self.features))

    def train_step(self, x: np.ndarray) -> np.ndarray:
        mean, variance = moments(x)
        stddev = np.sqrt(variance + self.epsilon)
        renorm_stddev = np.maximum(self.renorm_stddev, np.sqrt(self.epsilon))
        r = stddev / renorm_stddev
        r = np.clip(r, self.rmin, self.rmax) if (self.rmin, self.rmax) != (None, None) else r
        d = (mean - self.renorm_mean) / renorm_stddev
        d = np.clip(d, -self.dmax, self.dmax) if self.dmax is not None else d
        output = normalize(x, mean, variance, r * self.gamma, d * self.gamma + self.beta, self.epsilon)
        m, rm = self.momentum, self.renorm_momentum
        self.renorm_mean = rm * self.renorm_mean + (1 - rm) * mean
        self.renorm_stddev = rm * self.renorm_stddev + (1 - rm) * stddev
        self.moving_mean = m * self.moving_mean + (1 - m) * mean
        self.moving_stddev = m * self.moving_stddev + (1 - m) * stddev
        self.moving_variance = np.maximum(self.moving_stddev ** 2 - self.epsilon, 0.0)
        return output


def layer_norm(x, gamma, beta, epsilon: float) -> np.ndarray:
    """Per sample over all of its features (every axis but the first); gamma / beta of the sample's shape."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def group_norm(x, groups: int, gamma, beta, epsilon: float) -> np.ndarray:
    """Per sample and group of consecutive channels (the last axis; channel c in group c // (C / groups)),
    over the group's channels and every position; gamma / beta per channel."""
    x = np.asarray(x, np.float64)
    grouped = x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups)
    axes = tuple(range(1, grouped.ndim - 2)) + (grouped.ndim - 1,)
    mean = grouped.mean(axis=axes, keepdims=True)
    variance = ((grouped - mean) ** 2).mean(axis=axes, keepdims=True)
    return ((grouped - mean) / np.sqrt(variance + epsilon)).reshape(x.shape) * gamma + beta


def weight_norm(v, g) -> np.ndarray:
    """The kernel g * v / ||v||, the norm per output unit (the last axis, Keras layout) over all others."""
    v = np.asarray(v, np.float64)
    return v * (np.asarray(g, np.float64) / np.sqrt((v ** 2).sum(axis=tuple(range(v.ndim - 1)))))


def selu(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))


def alpha_dropout(x, keep, rate: float) -> np.ndarray:
    """AlphaDropout with a given mask (True = kept): dropped units set to alpha' = -scale * alpha, then
    a * x + b, with a = ((1 - rate)(1 + rate alpha'^2))^-1/2 and b = -a alpha' rate (mean 0, variance 1 kept)."""
    alpha_p = -SELU_SCALE * SELU_ALPHA
    a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
    return a * np.where(keep, np.asarray(x, np.float64), alpha_p) - a * alpha_p * rate
