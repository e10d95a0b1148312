"""A training step without autograd for MLPs (Linear, BatchNorm1d, ReLU, Flatten, MaskedDropout), same kernels as autograd.

For the MLPs at batch 32 on one CPU thread, autograd's bookkeeping (graph nodes, saved tensors, views, the
engine) is about 30% of a training step. Here each layer saves what its backward needs and calls the aten
kernels autograd itself calls (native_batch_norm(_backward), threshold_backward, mm/addmm, the loss'
log_softmax/nll_loss and their backward functions) on operands of the same layouts, so the loss, the
gradients and BN's running statistics equal the autograd path's bit for bit (tests/test_torch_fast.py).
CPU only: on a GPU torch's BN module runs cuDNN's kernel, not native_batch_norm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

if TYPE_CHECKING:  # imported where used: backends/torch.py may import this module at its top
    from bnbench.training.backends.torch import KerasBatchNorm

# The aten kernels autograd calls. Where torch has a direct binding (mm, addmm, native_batch_norm,
# _log_softmax(_backward_data)) it is used: the same kernel, ~1-3 us less Python per call than torch.ops.
_bn_backward = torch.ops.aten.native_batch_norm_backward.default
_relu_backward = torch.ops.aten.threshold_backward.default
_nll_loss, _nll_loss_backward = torch.ops.aten.nll_loss_forward.default, torch.ops.aten.nll_loss_backward.default
MEAN = 1  # at::Reduction::Mean


class _Linear:
    def __init__(self, module: nn.Linear):
        self.weight, self.bias = module.weight, module.bias
        self.weight_t = module.weight.detach().t()  # a view: follows the optimizer's in-place updates
        self.trainable = [p for p in (self.weight, self.bias) if p is not None and p.requires_grad]

    def forward(self, x):
        self.x = x  # for backward (nothing writes into it: ReLU works in place only on Linear / BN outputs)
        # F.linear on a 2-D input: addmm(bias, x, W.t()) with a bias, else mm(x, W.t()).
        return torch.mm(x, self.weight_t) if self.bias is None else torch.addmm(self.bias, x, self.weight_t)

    def backward(self, grad, need_input: bool):
        # As autograd's mm backward for W.t() (column-major): dW = (grad.t() @ x), contiguous [out, in].
        grads = [torch.mm(grad.t(), self.x)] if self.weight.requires_grad else []
        if self.bias is not None and self.bias.requires_grad:
            grads.append(grad.sum(0))
        return (torch.mm(grad, self.weight) if need_input else None), grads


class _BatchNorm:
    """KerasBatchNorm(BatchNorm1d) in training mode, running_var kept in Keras' (biased) convention."""

    def __init__(self, module: KerasBatchNorm):
        self.norm = norm = module.norm
        self.momentum, self.eps = norm.momentum, norm.eps
        self.weight, self.bias = norm.weight, norm.bias  # None when not affine
        self.mask = [False, self.weight is not None and self.weight.requires_grad,
                     self.bias is not None and self.bias.requires_grad]
        self.trainable = [p for p, on in zip((self.weight, self.bias), self.mask[1:]) if on]

    def forward(self, x):
        norm = self.norm  # buffers read per step: KerasBatchNorm.forward replaces running_var each step
        running_mean, running_var = norm.running_mean, norm.running_var
        previous = running_var.clone()
        norm.num_batches_tracked.add_(1)  # as _BatchNorm.forward does (part of the state dict)
        y, self.mean, self.invstd = torch.native_batch_norm(x, self.weight, self.bias, running_mean, running_var,
                                                           True, self.momentum, self.eps)
        # torch stored the unbiased variance: KerasBatchNorm's correction, the same operations in place.
        n = x.shape[0]
        running_var.mul_(n - 1).add_(previous, alpha=1.0 - self.momentum).div_(n)
        self.x = x
        return y

    def backward(self, grad, need_input: bool):
        self.mask[0] = need_input
        dx, dw, db = _bn_backward(grad, self.x, self.weight, None, None, self.mean, self.invstd, True, self.eps,
                                  self.mask)
        return dx, [g for g, on in zip((dw, db), self.mask[1:]) if on]


class _ReLU:
    trainable = []

    def __init__(self, in_place: bool):
        self.in_place = in_place

    def forward(self, x):
        # In place after Linear / BN: neither keeps its output for its backward, and it is a new tensor.
        self.y = x.relu_() if self.in_place else x.relu()
        return self.y

    def backward(self, grad, need_input: bool):
        return _relu_backward(grad, self.y, 0), []  # autograd's ReLU backward


class _Flatten:
    """FlattenChannelsLast on a [B, F] or [B, H, W] batch (a 4-D input only follows convolutions)."""

    trainable = []

    def forward(self, x):
        self.shape = x.shape
        return x.flatten(1)

    def backward(self, grad, need_input: bool):
        return grad.view(self.shape), []


class _Dropout:
    """MaskedDropout: the activations times the mini-batch's mask (a new tensor), and so the gradient."""

    trainable = []

    def __init__(self, module):
        self.module = module

    def forward(self, x):
        self.mask = self.module.mask  # set by the Trainer before each step
        return x * self.mask

    def backward(self, grad, need_input: bool):
        return grad * self.mask, []  # autograd's mul backward (the mask needs no gradient)


def _layer(module: nn.Module, previous):
    from bnbench.training.backends.torch import FlattenChannelsLast, KerasBatchNorm, MaskedDropout

    if isinstance(module, nn.Linear) and not nn.utils.parametrize.is_parametrized(module):  # (weight norm: autograd)
        return _Linear(module)
    if (isinstance(module, KerasBatchNorm) and not module.sequence and type(module.norm) is nn.BatchNorm1d
            and module.norm.track_running_stats and module.norm.momentum is not None):
        return _BatchNorm(module)
    if isinstance(module, nn.ReLU):
        return _ReLU(in_place=isinstance(previous, (_Linear, _BatchNorm)))
    if isinstance(module, FlattenChannelsLast):
        return _Flatten()
    if isinstance(module, MaskedDropout) and not module.alpha:
        return _Dropout(module)
    return None


def manual_step(model: nn.Sequential, binary: bool) -> Callable[[torch.Tensor, torch.Tensor],
                                                               tuple[torch.Tensor, list[torch.Tensor]]] | None:
    """None when the model holds a module the manual step does not cover (then the caller uses autograd).
    Else step(x, y) -> (loss, grads): runs the forward pass in training mode (updating BN running stats
    exactly as the module's forward does), returns the mean loss (0-dim tensor) and the gradients of the
    trainable parameters in `[p for p in model.parameters() if p.requires_grad]` order.

    Build it once the model is on its device: like FusedSGD it keeps the parameter tensors (and views of
    them), which the optimizer and load_state_dict update in place."""
    if any(t.device.type != "cpu" for t in (*model.parameters(), *model.buffers())):
        return None  # (see the module docstring)
    layers = []
    for module in model:
        layers.append(_layer(module, layers[-1] if layers else None))
        if layers[-1] is None:
            return None
    # The plan: backward runs from the last layer down to the first one with trainable parameters; a
    # layer needs its input's gradient only when a layer before it has trainable parameters.
    first = next((i for i, layer in enumerate(layers) if layer.trainable), len(layers))
    backward = [(layer.backward, i > first) for i, layer in enumerate(layers)][first:][::-1]
    forward = [layer.forward for layer in layers]
    assert [p for layer in layers for p in layer.trainable] == [p for p in model.parameters() if p.requires_grad]

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.no_grad():
            for f in forward:
                x = f(x)
            grad, loss = _binary_loss(x, y) if binary else _cross_entropy(x, y)
            grads = []
            for b, need_input in backward:
                grad, layer_grads = b(grad, need_input)
                grads[:0] = layer_grads  # backward meets the parameters in reverse order
        return loss, grads

    return step


def _cross_entropy(logits, y):
    """nn.CrossEntropyLoss (mean) and d loss / d logits = (softmax - onehot) / N, via the kernels of
    log_softmax + nll_loss and their backward functions, as autograd computes it."""
    log_probs = torch._log_softmax(logits, 1, False)
    loss, total_weight = _nll_loss(log_probs, y, None, MEAN, -100)
    grad = _nll_loss_backward(torch.ones_like(loss), log_probs, y, None, MEAN, -100, total_weight)
    return torch._log_softmax_backward_data(grad, log_probs, 1, logits.dtype), loss


def _binary_loss(logits, y):
    """nn.BCEWithLogitsLoss (mean) on logits[:, 0]; its gradient (sigmoid(z) - y) / N, as autograd's
    binary_cross_entropy_with_logits_backward computes it, back in the logits' [N, 1] shape."""
    z = logits[:, 0]
    loss = nn.functional.binary_cross_entropy_with_logits(z, y)
    return (torch.sigmoid(z) - y).div_(z.numel()).unsqueeze(1), loss
