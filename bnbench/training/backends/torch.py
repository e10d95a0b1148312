"""PyTorch: spec -> nn.Sequential; a short plain loop (same batches as Keras).

Samples arrive channels-last as in Keras; conv layers run channels-first, and Flatten goes back to
channels-last first, so the Dense weights after it have the same layout in both frameworks.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from bnbench import BnbenchError
from bnbench.training import bn as bnmap
from bnbench.training import spec as specs
from bnbench.training.backends.torch_fast import manual_step
from bnbench.training.loop import EVAL_BATCH, SPLITS, batches

NAME = "PyTorch"


def select_device(setting: str) -> torch.device:
    """config `device`: cpu, cuda (must exist) or auto (cuda when PyTorch sees a GPU)."""
    available = torch.cuda.is_available()
    if setting == "cuda" and not available:
        raise BnbenchError("config device: cuda, but PyTorch sees no CUDA GPU here; "
                           "set device: auto or cpu, or run on a GPU node")
    return torch.device("cuda" if setting == "cuda" or (setting == "auto" and available) else "cpu")


def configure(threads: int, seed: int) -> None:
    """Pin torch to the rule's threads and make every op deterministic."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already fixed once parallel work has run in this process
        pass
    torch.manual_seed(seed)
    # Deterministic cuBLAS needs a fixed workspace (else its first matrix product on a GPU raises).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # torch.use_deterministic_algorithms(True) without its first line, which imports torch._inductor
    # (1.2 s of a 3.4 s circles job) to configure torch.compile, which bnbench does not use.
    torch._C._set_deterministic_algorithms(True)


class KerasBatchNorm(nn.Module):
    """A torch BatchNorm1d/2d that keeps Keras' moving variance (the biased batch variance).

    torch averages the unbiased batch variance (biased * n / (n - 1)) into running_var. After its update
    we undo that exactly: with m the torch momentum, n the values per feature in the batch and `previous`
    the buffer before the step, Keras' value is ((n - 1) * running_var + (1 - m) * previous) / n.
    `sequence`: the input is [batch, time, features] and, as in Keras, normalised over batch and time.
    """

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, sequence: bool = False):
        super().__init__()
        self.norm, self.sequence = norm, sequence

    def forward(self, x):
        x = x.transpose(1, 2) if self.sequence else x
        if not self.training:
            y = self.norm(x)
        else:
            previous = self.norm.running_var.clone()
            y = self.norm(x)
            n = x.numel() // x.shape[1]
            with torch.no_grad():  # a new tensor: autograd saved the updated one for the backward pass
                self.norm.running_var = torch.add(self.norm.running_var * (n - 1), previous,
                                                  alpha=1.0 - self.norm.momentum) / n
        return y.transpose(1, 2) if self.sequence else y


def _freeze_unused(norm: nn.Module, settings: bnmap.BNSettings) -> nn.Module:
    """torch has no centre-only / scale-only switch: the parameter Keras would not have stays at identity."""
    for name, trainable in bnmap.torch_trainable(settings).items():
        if getattr(norm, name, None) is not None and not trainable:
            getattr(norm, name).requires_grad_(False)
    return norm


def batch_norm(settings: bnmap.BNSettings, shape: tuple) -> KerasBatchNorm:
    """The BN module for samples of channels-last `shape` ([F], [T, F] or [H, W, C]; conv runs channels-first)."""
    norm = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(shape[-1], **bnmap.torch_kwargs(settings))
    return KerasBatchNorm(_freeze_unused(norm, settings), sequence=len(shape) == 2)


class KerasBatchRenorm(nn.Module):
    """Batch renormalization as Keras 3 computes it (BatchNormalization(renorm=True)), written once for torch.

    Training: the batch is normalised with its own mean and variance (gradients flow through them, as in
    BN), then corrected by r = clip(std_B / renorm_std, rmin, rmax) and d = clip((mean_B - renorm_mean) /
    renorm_std, -dmax, dmax), both without gradient: y = ((x - mean_B) / std_B * r + d) * gamma + beta, with
    std_B = sqrt(var_B + eps) and renorm_std floored at sqrt(eps). Then renorm_mean / renorm_std move with
    renorm_momentum, moving_mean / moving_stddev with momentum (Keras convention: new = m * old + (1 - m) *
    batch), and moving_variance = relu(moving_stddev^2 - eps). Inference: BN with the moving mean and variance.
    Channels-first input ([N, C], [N, C, H, W]); `sequence`: [N, T, F], normalised over batch and time."""

    def __init__(self, features: int, settings: bnmap.BNSettings, renorm: bnmap.RenormSettings, sequence: bool = False):
        super().__init__()
        self.settings, self.renorm, self.sequence = settings, renorm, sequence
        self.weight = nn.Parameter(torch.ones(features), requires_grad=settings.scale)
        self.bias = nn.Parameter(torch.zeros(features), requires_grad=settings.center)
        for name, value in {"moving_mean": 0.0, "moving_variance": 1.0, **specs.RENORM_STATE}.items():
            self.register_buffer(name, torch.full((features,), value))

    def forward(self, x):
        x = x.transpose(1, 2) if self.sequence else x
        axes, view = [0, *range(2, x.dim())], (1, -1, *([1] * (x.dim() - 2)))
        eps = self.settings.epsilon  # (the frameworks' BN kernels take it as a float, as Keras does)
        if not self.training:
            y = (x - self.moving_mean.view(view)) * torch.rsqrt(self.moving_variance.view(view) + eps)
            y = y * self.weight.view(view) + self.bias.view(view)
            return y.transpose(1, 2) if self.sequence else y
        with torch.no_grad():  # r and d carry no gradient; the normalization below recomputes the moments
            variance, mean = torch.var_mean(x, dim=axes, correction=0)
            stddev = torch.sqrt(variance + eps)
            renorm = self.renorm
            renorm_stddev = torch.clamp(self.renorm_stddev, min=eps ** 0.5)
            r, d = stddev / renorm_stddev, (mean - self.renorm_mean) / renorm_stddev
            r = r.clamp(min=renorm.rmin, max=renorm.rmax) if (renorm.rmin, renorm.rmax) != (None, None) else r
            d = d.clamp(-renorm.dmax, renorm.dmax) if renorm.dmax is not None else d
            m, rm = self.settings.momentum, renorm.renorm_momentum
            self.renorm_mean.mul_(rm).add_(mean, alpha=1 - rm)
            self.renorm_stddev.mul_(rm).add_(stddev, alpha=1 - rm)
            self.moving_mean.mul_(m).add_(mean, alpha=1 - m)
            self.moving_stddev.mul_(m).add_(stddev, alpha=1 - m)
            self.moving_variance.copy_(torch.relu(self.moving_stddev.square() - eps))
        # BN in training mode with gamma * r and d * gamma + beta: batch statistics with their gradients
        y = nn.functional.batch_norm(x, None, None, r * self.weight, d * self.weight + self.bias, True, 0.0, eps)
        return y.transpose(1, 2) if self.sequence else y


def norm_module(layer, shape: tuple) -> nn.Module:
    """The torch module for a spec normalization layer on samples of channels-last `shape` (it sees them
    channels-first where the model runs convolutions)."""
    settings = layer.settings
    if isinstance(layer, specs.BatchNorm) and layer.renorm is not None:
        return KerasBatchRenorm(shape[-1], settings, layer.renorm, sequence=len(shape) == 2)
    if isinstance(layer, specs.BatchNorm):
        return batch_norm(settings, shape)
    affine = settings.center or settings.scale
    if isinstance(layer, specs.LayerNorm):  # over the whole sample: [C, H, W] channels-first
        sample = (shape[-1], *shape[:-1]) if len(shape) == 3 else tuple(shape)
        return _freeze_unused(nn.LayerNorm(sample, eps=settings.epsilon, elementwise_affine=affine), settings)
    return _freeze_unused(nn.GroupNorm(layer.groups, shape[-1], eps=settings.epsilon, affine=affine), settings)


class MaskedDropout(nn.Module):
    """Dropout with a given mask: in training mode the activations times `mask` (set per mini-batch by the
    Trainer from the run's seeded masks, spec.dropout_masks); the identity in inference mode. `alpha`:
    AlphaDropout, where `mask` holds which units are kept: dropped ones become alpha', then a * x + b
    (spec.alpha_dropout_affine's float32 constants)."""

    def __init__(self, rate: float, alpha: bool = False):
        super().__init__()
        self.rate, self.alpha, self.mask = rate, alpha, None
        # Python floats holding the float32 constants exactly: a tensor op takes them in its own dtype
        self._constants = [float(c) for c in specs.alpha_dropout_affine(rate)] if alpha else None

    def set_mask(self, keep: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> None:
        """The mini-batch's mask from its kept units: factors for dropout, the kept units for AlphaDropout."""
        self.mask = keep if self.alpha else torch.where(keep, scale, zero)

    def forward(self, x):
        if not self.training:
            return x
        if not self.alpha:
            return x * self.mask
        alpha_p, a, b = self._constants
        return a * torch.where(self.mask, x, alpha_p) + b


class ChannelsFirst(nn.Module):
    def forward(self, x):
        return x.permute(0, 3, 1, 2)


class FlattenChannelsLast(nn.Module):
    def forward(self, x):
        return (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).flatten(1)


class LastOutputLSTM(nn.Module):
    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.lstm = lstm

    def forward(self, x):
        return self.lstm(x)[0][:, -1]


def _copy(param: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value)).reshape(param.shape))


RENORM_BUFFERS = ("moving_mean", "moving_variance", *specs.RENORM_STATE)


def _weight_norm(module: nn.Module, w: dict) -> nn.Module:
    """torch's weight_norm (dim 0: one g per output unit, the norm over the other axes) on a module whose
    weight holds the run's kernel, which becomes v as it is; g is set to the run's value (torch would compute
    ||v|| itself, in its own round-off)."""
    module = nn.utils.parametrizations.weight_norm(module, dim=0)
    _copy(module.parametrizations.weight.original0, w["g"])  # [out, 1, ...]
    return module


def _module(layer, shape: tuple, weights) -> nn.Module:
    """The torch module for one spec entry; `shape` is the channels-last sample shape entering it.
    Weights come in Keras layout (see bnbench.training.spec) and are transposed here."""
    if isinstance(layer, specs.Dense):
        w, linear = next(weights), nn.Linear(shape[-1], layer.units, bias=layer.use_bias)
        _copy(linear.weight, w["kernel"].T)  # torch stores [out, in]
        if layer.use_bias:
            _copy(linear.bias, w["bias"])
        return _weight_norm(linear, w) if layer.weight_norm else linear
    if isinstance(layer, specs.Conv2D):
        w = next(weights)
        conv = nn.Conv2d(shape[-1], layer.filters, layer.kernel_size, bias=layer.use_bias)
        _copy(conv.weight, w["kernel"].transpose(3, 2, 0, 1))  # [kh, kw, in, out] -> [out, in, kh, kw]
        if layer.use_bias:
            _copy(conv.bias, w["bias"])
        return _weight_norm(conv, w) if layer.weight_norm else conv
    if isinstance(layer, specs.LSTM):
        w = next(weights)
        lstm = nn.LSTM(shape[-1], layer.units, bias=layer.use_bias, batch_first=True)
        _copy(lstm.weight_ih_l0, w["kernel"].T)  # same gate order (i, f, g, o) as Keras (i, f, c, o)
        _copy(lstm.weight_hh_l0, w["recurrent"].T)
        if layer.use_bias:  # torch adds two biases, Keras has one: the second stays frozen at zero
            _copy(lstm.bias_ih_l0, w["bias"])   # (both learning would move the sum twice as fast)
            _copy(lstm.bias_hh_l0, np.zeros_like(w["bias"]))
            lstm.bias_hh_l0.requires_grad_(False)
        return LastOutputLSTM(lstm)
    if isinstance(layer, specs.NORM_LAYERS):
        w, module = next(weights), norm_module(layer, shape)
        norm = module.norm if isinstance(module, KerasBatchNorm) else module
        layout = (lambda a: a.transpose(2, 0, 1)) if isinstance(layer, specs.LayerNorm) and len(shape) == 3 else np.asarray
        if getattr(norm, "weight", None) is not None:  # a frozen parameter stays at identity, as Keras has none
            _copy(norm.weight, layout(w["gamma"] if layer.settings.scale else np.ones_like(w["gamma"])))
        if getattr(norm, "bias", None) is not None:
            _copy(norm.bias, layout(w["beta"] if layer.settings.center else np.zeros_like(w["beta"])))
        if isinstance(module, KerasBatchNorm):
            _copy(norm.running_mean, w["moving_mean"])
            _copy(norm.running_var, w["moving_variance"])
        elif isinstance(module, KerasBatchRenorm):
            for key in RENORM_BUFFERS:
                _copy(getattr(module, key), w[key])
        return module
    if isinstance(layer, specs.ReLU):
        return nn.ReLU()
    if isinstance(layer, specs.SELU):
        return nn.SELU()
    if isinstance(layer, specs.MaxPool):
        return nn.MaxPool2d(layer.size)
    if isinstance(layer, specs.Flatten):
        return FlattenChannelsLast()
    if isinstance(layer, specs.Dropout):
        return MaskedDropout(layer.rate, layer.alpha)
    raise TypeError(f"no torch module for {layer!r}")


def build_model(layers: list, shape: tuple, weights: list) -> nn.Sequential:
    modules, weights = [ChannelsFirst()] if len(shape) == 3 else [], iter(weights)
    for layer in layers:
        modules.append(_module(layer, shape, weights))
        shape = specs.output_shape(layer, shape)
    return nn.Sequential(*modules)


def _numpy(tensor: torch.Tensor | None, like: torch.Tensor | None = None, fill: float = 0.0) -> np.ndarray:
    if tensor is None:
        return np.full(like.shape, fill, np.float32)
    return tensor.detach().cpu().numpy().copy()  # .cpu(): a no-op on the CPU, needed for a CUDA model


def _kernel_state(module: nn.Module) -> dict:
    """A Linear / Conv2d's kernel (v under weight norm, with g) and bias in Keras layout."""
    parametrized = nn.utils.parametrize.is_parametrized(module, "weight")
    kernel = module.parametrizations.weight.original1 if parametrized else module.weight
    layout = (lambda a: a.T) if kernel.dim() == 2 else (lambda a: a.transpose(2, 3, 1, 0))
    entry = {"kernel": layout(_numpy(kernel)), "bias": _numpy(module.bias, kernel.reshape(len(kernel), -1)[:, 0])}
    if parametrized:
        entry["g"] = _numpy(module.parametrizations.weight.original0).reshape(-1)
    return entry


def _norm_state(module: nn.Module) -> dict:
    """gamma / beta (identity where the module has none) and BN's statistics, in Keras layout."""
    norm = module.norm if isinstance(module, KerasBatchNorm) else module
    like = norm.running_mean if isinstance(module, KerasBatchNorm) else None
    if isinstance(norm, nn.LayerNorm):
        like = torch.empty(norm.normalized_shape)
    elif isinstance(norm, nn.GroupNorm):
        like = torch.empty(norm.num_channels)
    elif isinstance(module, KerasBatchRenorm):
        like = module.moving_mean
    state = {"gamma": _numpy(norm.weight, like, 1.0), "beta": _numpy(norm.bias, like, 0.0)}
    if isinstance(norm, nn.LayerNorm) and len(norm.normalized_shape) == 3:  # [C, H, W] -> [H, W, C]
        state = {key: value.transpose(1, 2, 0) for key, value in state.items()}
    if isinstance(module, KerasBatchNorm):
        state.update(moving_mean=_numpy(norm.running_mean), moving_variance=_numpy(norm.running_var))
    elif isinstance(module, KerasBatchRenorm):
        state.update({key: _numpy(getattr(module, key)) for key in RENORM_BUFFERS})
    return state


NORM_MODULES = (KerasBatchNorm, KerasBatchRenorm, nn.LayerNorm, nn.GroupNorm)


def export_weights(model: nn.Sequential) -> list[dict]:
    """The model's weights and normalization state in Keras layout, in spec.initial_weights' format (the
    inverse of build_model's loading)."""
    exported = []
    for module in model:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            exported.append(_kernel_state(module))
        elif isinstance(module, LastOutputLSTM):
            lstm = module.lstm
            bias = (_numpy(lstm.bias_ih_l0) + _numpy(lstm.bias_hh_l0) if lstm.bias
                    else np.zeros(lstm.weight_ih_l0.shape[0], np.float32))
            exported.append({"kernel": _numpy(lstm.weight_ih_l0).T, "recurrent": _numpy(lstm.weight_hh_l0).T,
                             "bias": bias})
        elif isinstance(module, NORM_MODULES):
            exported.append(_norm_state(module))
    return exported


class FusedSGD:
    """SGD with (Nesterov) momentum, exactly as torch.optim.SGD(fused=True) computes it:
    buf = momentum * buf + grad; w -= lr * (grad + momentum * buf if nesterov else buf).

    One fused kernel per step. torch.optim itself is avoided because its first use imports
    torch._dynamo (about 1 s of every job's start-up) and its Python step costs ~0.1 ms per batch.
    """

    def __init__(self, params: list, lr: float, momentum: float, nesterov: bool):
        self.params, self.lr, self.momentum, self.nesterov = params, lr, momentum, nesterov
        # Zero buffers make the first step buf = grad, as torch.optim's copy does.
        self.buffers = [torch.zeros_like(p) for p in params] if momentum else []

    def step(self, grads) -> None:
        # The fused kernel walks memory in order: a gradient must share its parameter's (contiguous)
        # layout. autograd.grad can return a conv kernel's gradient channels-last.
        grads = [g.contiguous() for g in grads]
        with torch.no_grad():
            torch._fused_sgd_(self.params, grads, self.buffers, weight_decay=0.0, momentum=self.momentum,
                              lr=self.lr, dampening=0.0, nesterov=self.nesterov, maximize=False,
                              is_first_step=False)


class Trainer:
    def __init__(self, run: dict, data: dict, shape: tuple, outputs: int, device: torch.device | str = "cpu",
                 weights: list | None = None):
        """`weights` (Keras layout) default to the run seed's spec.initial_weights."""
        self.device, self.shape, self.outputs = torch.device(device), shape, outputs
        self.binary = outputs == 1
        self.loss_fn = nn.BCEWithLogitsLoss() if self.binary else nn.CrossEntropyLoss()
        self.splits = {split: self._to_tensors(data, split) for split in SPLITS}
        self.start_run(run, weights)

    def start_run(self, run: dict, weights: list | None = None) -> None:
        """Back to the start of `run`: a model with its initial weights and BN statistics, a fresh
        optimizer. Built anew each time: that takes milliseconds (torch compiles nothing ahead)."""
        layers = specs.run_layers(run, self.outputs)
        weights = specs.run_weights(run, layers, self.shape) if weights is None else weights
        self.dropouts = specs.dropouts(layers, self.shape)
        self.model = build_model(layers, self.shape, weights).to(self.device)
        self._dropout_modules = [m for m in self.model if isinstance(m, MaskedDropout)]
        opt = run["optimizer"]
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = FusedSGD(self.params, opt["learning_rate"], opt["momentum"], opt["nesterov"])
        self.batch_size = run["batch_size"]
        # MLPs on the CPU step without autograd (backends/torch_fast.py: the same kernels, the same
        # bits, ~30 % less time per step); convolutions, LSTMs and GPUs take the autograd step.
        self._step = manual_step(self.model, self.binary) or self._autograd_step

    def _to_tensors(self, data: dict, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Wrap one split without copying (torch.from_numpy shares memory); the dict lets go of it."""
        x, y = data.pop(f"x_{split}"), data.pop(f"y_{split}")
        x, y = torch.from_numpy(x), torch.from_numpy(y.astype(x.dtype) if self.binary else y)
        return x.to(self.device), y.to(self.device)  # no copy on the CPU

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(logits[:, 0] if self.binary else logits, y)

    def train_epoch(self, order: np.ndarray, masks: list[np.ndarray] = ()) -> float:
        """One SGD step per mini-batch of x_train[order] (dropout: `masks`, rows by sample); returns the
        mean of the steps' losses."""
        x, y = self.splits["train"]
        order = torch.from_numpy(order).to(self.device)
        masks = [torch.from_numpy(mask).to(self.device) for mask in masks]
        dtype = x.dtype  # the float32 factor, exactly, in the model's dtype (as Keras casts it)
        scales = [torch.tensor(float(specs.keep_scale(m.rate)), dtype=dtype, device=self.device)
                  for m in self._dropout_modules]
        zero = torch.zeros((), dtype=dtype, device=self.device)
        self.model.train()
        losses = []
        for batch in batches(len(order), self.batch_size):
            index = order[batch]  # index_select: ~6x cheaper than x[index], no shuffled copy of x
            for module, mask, scale in zip(self._dropout_modules, masks, scales):
                module.set_mask(mask.index_select(0, index), scale, zero)
            loss, grads = self._step(x.index_select(0, index), y.index_select(0, index))
            self.optimizer.step(grads)
            losses.append(loss.detach())
        return float(torch.stack(losses).mean())

    def _autograd_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(mean loss, gradients of self.params) by autograd: no .grad to accumulate or zero."""
        loss = self._loss(self.model(x), y)
        return loss, torch.autograd.grad(loss, self.params)

    def state(self) -> dict[str, np.ndarray]:
        """Weights and BN buffers, optimizer momentum buffers, torch's RNG state (see training.Trainer)."""
        arrays = {f"model/{name}": _numpy(value) for name, value in self.model.state_dict().items()}
        arrays.update({f"optimizer/{i}": _numpy(buffer) for i, buffer in enumerate(self.optimizer.buffers)})
        arrays["rng/torch"] = torch.get_rng_state().numpy()
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        model = {k.removeprefix("model/"): torch.from_numpy(v) for k, v in arrays.items() if k.startswith("model/")}
        self.model.load_state_dict(model, strict=True)  # copies into the existing tensors
        with torch.no_grad():
            for i, buffer in enumerate(self.optimizer.buffers):
                buffer.copy_(torch.from_numpy(arrays[f"optimizer/{i}"]))
        torch.set_rng_state(torch.from_numpy(arrays["rng/torch"]))

    # BN's statistics for bnbench.training.diagnostics, in Keras' convention (biased moving variance)
    def _moving_modules(self) -> list[tuple[int, nn.Module, torch.Tensor, torch.Tensor]]:
        """(position in the model, module, moving mean, moving variance) of each layer with moving statistics."""
        found = []
        for position, module in enumerate(self.model):
            if isinstance(module, KerasBatchNorm):
                found.append((position, module, module.norm.running_mean, module.norm.running_var))
            elif isinstance(module, KerasBatchRenorm):
                found.append((position, module, module.moving_mean, module.moving_variance))
        return found

    def moving_statistics(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(_numpy(mean), _numpy(variance)) for _, _, mean, variance in self._moving_modules()]

    def set_moving_statistics(self, statistics: list) -> None:
        for (_, _, mean, variance), values in zip(self._moving_modules(), statistics):
            for buffer, value in zip((mean, variance), values):
                _copy(buffer, np.asarray(value))  # copy_ casts to the buffer's dtype

    @torch.inference_mode()
    def norm_inputs(self, rows: np.ndarray, layer: int) -> np.ndarray:
        """The inputs of the `layer`-th BN layer for training samples `rows`, in inference mode, channels last."""
        position = self._moving_modules()[layer][0]
        self.model.eval()
        x = self.splits["train"][0].index_select(0, torch.from_numpy(np.asarray(rows, np.int64)).to(self.device))
        x = self.model[:position](x)
        return _numpy(x.permute(0, 2, 3, 1) if x.dim() == 4 else x)  # conv runs channels first

    @torch.inference_mode()
    def evaluate(self, split: str) -> tuple[float, float]:
        x, y = self.splits[split]
        self.model.eval()
        logits = torch.cat([self.model(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])
        predicted = (logits[:, 0] > 0) if self.binary else logits.argmax(dim=1)
        labels = (y > 0.5) if self.binary else y
        return float(self._loss(logits, y)), int((predicted == labels).sum()) / len(labels)  # an exact fraction


def versions() -> dict:
    return {"torch": torch.__version__}

