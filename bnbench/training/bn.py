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


# --- the normalization family (variant key `norm`) -------------------------------------------------------
# batch   BN (above).             renorm  BN with Ioffe's batch renormalization (Keras' renorm=True).
# layer   per sample, over all of its features (Keras LayerNormalization over every axis but the batch;
#         torch nn.LayerNorm over the channels-first sample shape): gamma/beta per feature (per H, W, C).
# group   per sample and group of `groups` consecutive channels (Keras GroupNormalization, torch
#         nn.GroupNorm: the same grouping, channel c in group c // (C / groups)): gamma/beta per channel.
# weight  no normalization layer: every hidden kernel w = g * v / ||v|| (Salimans & Kingma 2016), the norm
#         per output unit over all other axes; g starts at ||v||, so w starts at the initial kernel.
NORMS = ("batch", "renorm", "layer", "group", "weight")
BATCH_STATISTICS = ("batch", "renorm")  # the norms that normalise with statistics over the batch
LAYER_NORMS = ("batch", "renorm", "layer", "group")  # the norms that are a layer (weight norm is not)
NORM_KEYS = ("norm", "groups", "rmax", "rmin", "dmax", "renorm_momentum", "pool_placement")


@dataclass(frozen=True)
class RenormSettings:
    """Batch renormalization's settings as Keras 3 names them; defaults are Keras' (no clipping). Keras 3
    clips at fixed bounds (no schedule): r = clip(batch std / renorm std, rmin, rmax), d = clip((batch mean -
    renorm mean) / renorm std, -dmax, dmax); renorm mean/std move with renorm_momentum."""

    rmax: float | None = None
    rmin: float | None = None
    dmax: float | None = None
    renorm_momentum: float = 0.99

    @classmethod
    def from_variant(cls, variant: dict) -> "RenormSettings":
        return cls(**{k: variant[k] for k in asdict(cls()) if k in variant})

    def clipping(self) -> dict:
        """Keras' renorm_clipping: only the bounds that are set."""
        return {k: float(v) for k, v in (("rmax", self.rmax), ("rmin", self.rmin), ("dmax", self.dmax))
                if v is not None}


def keras_renorm_kwargs(bn: BNSettings, renorm: RenormSettings) -> dict:
    return {**keras_kwargs(bn), "renorm": True, "renorm_clipping": renorm.clipping(),
            "renorm_momentum": renorm.renorm_momentum}
