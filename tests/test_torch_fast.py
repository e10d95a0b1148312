"""The PyTorch manual training step (backends/torch_fast.py) computes what autograd computes.

It calls the kernels autograd calls, with the same operand layouts, so on the CPU one step's loss,
gradients and BN running statistics equal the autograd path's bit for bit; 20 SGD steps stay within 1e-5.
"""

import copy

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from bnbench.training import spec
from bnbench.training.backends import torch as torch_backend
from bnbench.training.backends.torch_fast import manual_step
from conftest import REPO, record_parity

DEFAULT_VARIANTS = yaml.safe_load((REPO / "config.yaml").read_text())["variants"]
# BN with one affine parameter frozen (center-only, scale-only): not among the defaults, but allowed.
VARIANTS = {**DEFAULT_VARIANTS, "bn_center_only": {"placement": "before", "scale": False},
            "bn_scale_only": {"placement": "after", "center": False, "momentum": 0.5}}
ARCH_DATA = {"mlp": ((2,), 1), "mlp3": ((28, 28), 10)}  # (sample shape, outputs): circles, Fashion-MNIST



def manual_kind(variant: dict) -> bool:
    """BN (or no normalization) with ReLU: what the manual step covers; the rest of the family takes autograd."""
    return variant.get("norm", "batch") == "batch" and variant.get("activation", "relu") == "relu"


CASES = [(arch, variant) for arch in ARCH_DATA for variant, bn in VARIANTS.items()
         if not spec.unsupported(arch, bn) and manual_kind(bn)]


def build(arch: str, variant: str, seed: int = 1) -> nn.Sequential:
    """The torch model, every array moved off its initial value (biases, gamma, beta, moving statistics),
    so that a frozen or missing parameter would show."""
    shape, outputs = ARCH_DATA[arch]
    layers = spec.build_spec(arch, VARIANTS[variant], outputs)
    rng = np.random.default_rng(seed)
    weights = [{key: (value + rng.uniform(0.0, 0.1, value.shape) if key == "moving_variance"
                      else value + rng.normal(0.0, 0.05, value.shape)).astype(np.float32)
                for key, value in entry.items()} for entry in spec.initial_weights(layers, shape, seed)]
    return torch_backend.build_model(layers, shape, weights).train()


def batch(arch: str, n: int, rng) -> tuple[torch.Tensor, torch.Tensor]:
    """Random samples of the architecture's input type in the default dtype; labels as the Trainer passes
    them (0/1 in that dtype for the binary loss, int64 classes otherwise)."""
    shape, outputs = ARCH_DATA[arch]
    dtype = np.float64 if torch.get_default_dtype() == torch.float64 else np.float32
    if outputs == 1:
        x = rng.uniform(-1.2, 1.2, (n, *shape))
        y = (np.hypot(x[:, 0], x[:, 1]) < 0.8).astype(dtype)
    else:
        x, y = rng.uniform(0.0, 1.0, (n, *shape)), rng.integers(0, outputs, n)
    return torch.from_numpy(x.astype(dtype)), torch.from_numpy(y)


def autograd_step(model: nn.Sequential, binary: bool, x, y):
    """What Trainer.train_epoch does: (loss, grads) through the module forward and autograd."""
    params = [p for p in model.parameters() if p.requires_grad]
    logits = model(x)
    loss = (nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss())(logits[:, 0] if binary else logits, y)
    return loss.detach(), list(torch.autograd.grad(loss, params))


def relative(actual: torch.Tensor, expected: torch.Tensor) -> float:
    a, e = actual.double(), expected.double()
    return float((a - e).abs().max() / max(float(e.abs().max()), 1e-12)) if e.numel() else 0.0


@pytest.mark.parametrize("size", [32, 7], ids=["batch32", "ragged7"])
@pytest.mark.parametrize("arch, variant", CASES)
def test_manual_step_equals_autograd(arch, variant, size):
    """Loss, gradients (order and values) and every buffer (BN running mean / variance in Keras'
    convention, num_batches_tracked) after one step: bit for bit. A difference means the manual step
    calls another kernel, or the same one with other layouts, than autograd does."""
    binary, rng = ARCH_DATA[arch][1] == 1, np.random.default_rng(size)
    expected_model = build(arch, variant)
    model = copy.deepcopy(expected_model)
    step = manual_step(model, binary)
    assert step is not None
    # A module forward first: KerasBatchNorm replaces running_var, which the step must follow.
    warm_up = batch(arch, 32, rng)[0]
    with torch.no_grad():
        expected_model(warm_up), model(warm_up)
    x, y = batch(arch, size, rng)
    expected_loss, expected_grads = autograd_step(expected_model, binary, x, y)
    loss, grads = step(x, y)
    assert loss.shape == () and not loss.requires_grad
    assert [g.shape for g in grads] == [g.shape for g in expected_grads]
    pairs = [("loss", loss, expected_loss)] + [("grad", *pair) for pair in zip(grads, expected_grads)]
    pairs += [("buffer", *pair) for pair in zip(model.buffers(), expected_model.buffers(), strict=True)]
    for name, actual, expected in pairs:
        record_parity(f"torch manual step vs autograd, one step: {name}", relative(actual, expected))
        assert torch.equal(actual, expected), f"{arch} {variant}: {name} differs by {relative(actual, expected):.1e}"


@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
@pytest.mark.parametrize("arch, variant", CASES)
def test_sgd_steps_with_manual_step_follow_autograd(arch, variant, nesterov):
    """20 FusedSGD steps (the last one ragged) both ways: losses and state dicts within 1e-5 relative."""
    binary, rng = ARCH_DATA[arch][1] == 1, np.random.default_rng(20)
    models = {"autograd": build(arch, variant, seed=2)}
    models["manual"] = copy.deepcopy(models["autograd"])
    step = manual_step(models["manual"], binary)
    steps = {"autograd": lambda x, y: autograd_step(models["autograd"], binary, x, y), "manual": step}
    optimizers = {way: torch_backend.FusedSGD([p for p in model.parameters() if p.requires_grad], 0.01, 0.9,
                                              nesterov) for way, model in models.items()}
    losses = {way: [] for way in models}
    for i in range(20):
        x, y = batch(arch, 7 if i == 19 else 32, rng)
        for way in models:
            loss, grads = steps[way](x, y)
            optimizers[way].step(grads)
            losses[way].append(loss)
    difference = relative(torch.stack(losses["manual"]), torch.stack(losses["autograd"]))
    record_parity("torch manual step vs autograd, 20 SGD steps: losses", difference)
    assert difference <= 1e-5
    expected = models["autograd"].state_dict()
    for name, value in models["manual"].state_dict().items():
        difference = relative(value, expected[name])
        record_parity("torch manual step vs autograd, 20 SGD steps: weights and buffers", difference)
        assert difference <= 1e-5, f"{arch} {variant} {name}: {difference:.1e}"


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("variant", ["bn_before", "bn_no_affine"])
def test_manual_step_in_float64(float64, variant):
    """The step follows the model's dtype (the parity tests also train in float64)."""
    model = build("mlp3", variant)
    expected_model = copy.deepcopy(model)
    x, y = batch("mlp3", 32, np.random.default_rng(3))
    assert x.dtype == torch.float64
    loss, grads = manual_step(model, binary=False)(x, y)
    expected_loss, expected_grads = autograd_step(expected_model, False, x, y)
    assert loss.dtype == torch.float64 and torch.equal(loss, expected_loss)
    for actual, expected in zip([*grads, *model.buffers()], [*expected_grads, *expected_model.buffers()], strict=True):
        assert torch.equal(actual, expected)


@pytest.mark.parametrize("arch, shape", [("cnn", (28, 28, 1)), ("lstm", (28, 28))])
def test_manual_step_declines_other_models(arch, shape):
    """Convolutions, pooling, LSTMs and BN over sequences are left to autograd."""
    for variant in DEFAULT_VARIANTS.values():
        if not spec.unsupported(arch, variant):
            layers = spec.build_spec(arch, variant, 10)
            model = torch_backend.build_model(layers, shape, spec.initial_weights(layers, shape, 1))
            assert manual_step(model, binary=False) is None


@pytest.mark.parametrize("arch", ARCH_DATA)
def test_manual_step_declines_the_normalizers_beyond_bn(arch):
    """Batch renorm, layer, group and weight norm, SELU (and AlphaDropout) are left to autograd."""
    beyond = [v for v in DEFAULT_VARIANTS.values() if not manual_kind(v) and not spec.unsupported(arch, v)]
    assert len(beyond) >= 5
    shape, outputs = ARCH_DATA[arch]
    for variant in beyond:
        layers = spec.build_spec(arch, variant, outputs, dropout=0.2)
        model = torch_backend.build_model(layers, shape, spec.initial_weights(layers, shape, 1))
        assert manual_step(model, binary=outputs == 1) is None, variant


def test_manual_step_declines_models_off_the_cpu():
    """On a GPU torch's BN module runs cuDNN, not native_batch_norm: autograd keeps those (the meta device
    stands in for CUDA here)."""
    assert manual_step(build("mlp3", "bn_before"), binary=False) is not None
    assert manual_step(build("mlp3", "bn_before").to("meta"), binary=False) is None
