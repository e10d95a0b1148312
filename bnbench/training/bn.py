"""BatchNorm settings in one convention (Keras) and their translation to each framework.

Keras: moving = momentum * moving + (1 - momentum) * batch; center -> beta, scale -> gamma.
PyTorch: running = (1 - momentum) * running + momentum * batch; affine -> both weight and bias.
So torch momentum = 1 - Keras momentum (Keras 0.99 == torch 0.01; Keras 0.0 == torch 1.0, not 0).
PyTorch has no centre-only / scale-only switch: we build it affine and freeze the unused parameter at
its identity value (weight 1 or bias 0), which is exactly what Keras computes without gamma or beta.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BNSettings:
    """One BN layer's settings in Keras convention; these defaults are bnbench's (config.yaml's) defaults."""

    momentum: float = 0.99
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True

    @classmethod
    def from_variant(cls, variant: dict) -> "BNSettings":
        return cls(**{k: variant[k] for k in asdict(cls()) if k in variant})


def keras_kwargs(bn: BNSettings) -> dict:
    return {"momentum": bn.momentum, "epsilon": bn.epsilon, "center": bn.center, "scale": bn.scale}


def torch_kwargs(bn: BNSettings) -> dict:
    """Constructor arguments for torch.nn.BatchNorm1d/2d."""
    return {"eps": bn.epsilon, "momentum": 1.0 - bn.momentum, "affine": bn.center or bn.scale}


def torch_trainable(bn: BNSettings) -> dict:
    """Which affine parameters of the torch layer learn (the other stays at its identity value)."""
    return {"weight": bn.scale, "bias": bn.center}
