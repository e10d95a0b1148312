"""Batch normalization written out in NumPy (float64): the yardstick both frameworks are tested against.

It follows the hand-written recipe `tf.nn.moments` + `tf.nn.batch_normalization`, in Keras' convention:
statistics over every axis but the last (the batch for [N, F]; batch and positions for [N, H, W, C]
and [N, T, F]), the biased batch variance, and moving averages moving = momentum * moving +
(1 - momentum) * batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnbench.training.bn import BNSettings


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
