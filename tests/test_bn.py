import numpy as np
import pytest
import torch

from bnbench.training import bn
from bnbench.training.backends import torch as torch_backend


@pytest.mark.parametrize(
    "keras_momentum, torch_momentum", [(0.99, 0.01), (0.9, 0.1), (0.5, 0.5), (0.0, 1.0), (1.0, 0.0)]
)
def test_momentum_is_inverted(keras_momentum, torch_momentum):
    kwargs = bn.torch_kwargs(bn.BNSettings(momentum=keras_momentum))
    assert kwargs["momentum"] == pytest.approx(torch_momentum)


@pytest.mark.parametrize(
    "center, scale, affine, trainable",
    [
        (True, True, True, {"weight": True, "bias": True}),
        (False, False, False, {"weight": False, "bias": False}),
        (True, False, True, {"weight": False, "bias": True}),
        (False, True, True, {"weight": True, "bias": False}),
    ],
)
def test_affine_translation(center, scale, affine, trainable):
    settings = bn.BNSettings(center=center, scale=scale, epsilon=1e-5)
    assert bn.torch_kwargs(settings) == {"eps": 1e-5, "momentum": pytest.approx(0.01), "affine": affine}
    assert bn.keras_kwargs(settings) == {"momentum": 0.99, "epsilon": 1e-5, "center": center, "scale": scale}
    assert bn.torch_trainable(settings) == trainable


def test_settings_from_variant_takes_bn_keys_only():
    settings = bn.BNSettings.from_variant({"placement": "after", "momentum": 0.0, "use_bias": False})
    assert settings == bn.BNSettings(momentum=0.0)


@pytest.mark.parametrize("center, scale", [(True, False), (False, True)])
def test_frozen_torch_parameter_stays_at_identity_while_training(center, scale):
    layer = torch_backend.batch_norm(bn.BNSettings(center=center, scale=scale), (4,)).norm
    opt = torch.optim.SGD([p for p in layer.parameters() if p.requires_grad], lr=0.5)
    x = torch.randn(16, 4) * 3 + 2
    for _ in range(5):
        opt.zero_grad()
        (layer(x) * torch.arange(4.0)).pow(2).sum().backward()
        opt.step()
    learned, frozen = (layer.bias, layer.weight) if center else (layer.weight, layer.bias)
    identity = 1.0 if frozen is layer.weight else 0.0
    assert torch.all(frozen == identity)
    assert not torch.allclose(learned, torch.full_like(learned, 1.0 - identity))


def test_keras_momentum_zero_keeps_last_batch_statistics_in_torch():
    """Keras momentum 0.0 means 'moving stats = last batch'; torch needs momentum 1.0 for that."""
    layer = torch_backend.batch_norm(bn.BNSettings(momentum=0.0), (3,))
    x = torch.from_numpy(np.random.default_rng(0).normal(5, 2, size=(64, 3)).astype(np.float32))
    layer.train()
    layer(x)
    torch.testing.assert_close(layer.norm.running_mean, x.mean(0))
    torch.testing.assert_close(layer.norm.running_var, x.var(0, correction=0))  # Keras: biased


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_fused_sgd_matches_torch_optim(momentum, nesterov):
    """The torch backend's SGD gives torch.optim.SGD(fused=True)'s parameters, bit for bit, over 4 steps."""
    torch.manual_seed(0)
    ours = [torch.randn(5, 3), torch.randn(3)]
    reference = [p.clone().requires_grad_(True) for p in ours]
    optim = torch.optim.SGD(reference, lr=0.1, momentum=momentum, nesterov=nesterov, fused=True)
    sgd = torch_backend.FusedSGD(ours, lr=0.1, momentum=momentum, nesterov=nesterov)
    for step in range(4):
        # the kernel gradient arrives transposed in memory (as conv gradients can come channels-last)
        grads = [torch.randn(3, 5).t(), torch.randn(3)]
        for p, g in zip(reference, grads):
            p.grad = g.contiguous()
        optim.step()
        sgd.step(grads)
        for mine, theirs in zip(ours, reference):
            torch.testing.assert_close(mine, theirs.detach(), rtol=0, atol=0)
