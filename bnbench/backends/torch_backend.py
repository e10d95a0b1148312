"""PyTorch: spec -> nn.Sequential; a short plain loop (same batches as Keras).

Samples arrive channels-last as in Keras; conv layers run channels-first, and Flatten goes back to
channels-last first, so the Dense weights after it have the same layout in both frameworks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bnbench import bn as bnmap
from bnbench import spec as specs
from bnbench.training import SPLITS, batches, fit, prepare

EVAL_BATCH = 1024


def configure(threads: int, seed: int) -> None:
    """Pin torch to the rule's threads and make every op deterministic."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already fixed once parallel work has run in this process
        pass
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def batch_norm(settings: bnmap.BNSettings, features: int, conv: bool = False) -> nn.Module:
    layer = (nn.BatchNorm2d if conv else nn.BatchNorm1d)(features, **bnmap.torch_kwargs(settings))
    for name, trainable in bnmap.torch_trainable(settings).items():
        if layer.affine and not trainable:
            getattr(layer, name).requires_grad_(False)
    return layer


class ChannelsFirst(nn.Module):
    def forward(self, x):
        return x.permute(0, 3, 1, 2)


class FlattenChannelsLast(nn.Module):
    def forward(self, x):
        return (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).flatten(1)


class SequenceBatchNorm(nn.Module):
    """BN over the last axis of [batch, time, features], as Keras does (statistics over batch and time)."""

    def __init__(self, norm: nn.BatchNorm1d):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class LastOutputLSTM(nn.Module):
    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.lstm = lstm

    def forward(self, x):
        return self.lstm(x)[0][:, -1]


def _copy(param: torch.Tensor, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _module(layer, shape: tuple, weights) -> nn.Module:
    """The torch module for one spec entry; `shape` is the channels-last sample shape entering it."""
    if isinstance(layer, specs.Dense):
        w, linear = next(weights), nn.Linear(shape[-1], layer.units, bias=layer.use_bias)
        _copy(linear.weight, w["kernel"].T)  # torch stores [out, in]
        if layer.use_bias:
            _copy(linear.bias, w["bias"])
        return linear
    if isinstance(layer, specs.Conv2D):
        w = next(weights)
        conv = nn.Conv2d(shape[-1], layer.filters, layer.kernel_size, bias=layer.use_bias)
        _copy(conv.weight, w["kernel"].transpose(3, 2, 0, 1))  # [kh, kw, in, out] -> [out, in, kh, kw]
        if layer.use_bias:
            _copy(conv.bias, w["bias"])
        return conv
    if isinstance(layer, specs.LSTM):
        w = next(weights)
        lstm = nn.LSTM(shape[-1], layer.units, bias=layer.use_bias, batch_first=True)
        _copy(lstm.weight_ih_l0, w["kernel"].T)  # same gate order (i, f, g, o) as Keras (i, f, c, o)
        _copy(lstm.weight_hh_l0, w["recurrent"].T)
        if layer.use_bias:  # torch adds two biases; Keras has one
            _copy(lstm.bias_ih_l0, w["bias"])
            _copy(lstm.bias_hh_l0, np.zeros_like(w["bias"]))
        return LastOutputLSTM(lstm)
    if isinstance(layer, specs.BatchNorm):
        norm = batch_norm(layer.settings, shape[-1], conv=len(shape) == 3)
        return SequenceBatchNorm(norm) if len(shape) == 2 else norm
    if isinstance(layer, specs.ReLU):
        return nn.ReLU()
    if isinstance(layer, specs.MaxPool):
        return nn.MaxPool2d(layer.size)
    if isinstance(layer, specs.Flatten):
        return FlattenChannelsLast()
    raise TypeError(f"no torch module for {layer!r}")


def build_model(layers: list, shape: tuple, weights: list) -> nn.Sequential:
    modules, weights = [ChannelsFirst()] if len(shape) == 3 else [], iter(weights)
    for layer in layers:
        modules.append(_module(layer, shape, weights))
        shape = specs.output_shape(layer, shape)
    return nn.Sequential(*modules)


class Trainer:
    def __init__(self, run: dict, data: dict, shape: tuple, outputs: int):
        layers = specs.build_spec(run["arch"], run["bn"], outputs)
        self.model = build_model(layers, shape, specs.initial_weights(layers, shape, run["seed"]))
        opt = run["optimizer"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        # foreach: one multi-tensor update instead of a loop over parameters; same arithmetic.
        self.optimizer = torch.optim.SGD(params, lr=opt["learning_rate"], momentum=opt["momentum"],
                                         nesterov=opt["nesterov"], foreach=True)
        self.binary = outputs == 1
        self.loss_fn = nn.BCEWithLogitsLoss() if self.binary else nn.CrossEntropyLoss()
        self.batch_size = run["batch_size"]
        self.splits = {split: self._to_tensors(data, split) for split in SPLITS}

    def _to_tensors(self, data: dict, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Wrap one split without copying (torch.from_numpy shares memory); the dict lets go of it."""
        x, y = data.pop(f"x_{split}"), data.pop(f"y_{split}")
        return torch.from_numpy(x), torch.from_numpy(y.astype(np.float32) if self.binary else y)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(logits[:, 0] if self.binary else logits, y)

    def train_epoch(self, order: np.ndarray) -> None:
        x, y = self.splits["train"]
        order = torch.from_numpy(order)
        self.model.train()
        for batch in batches(len(order), self.batch_size):
            index = order[batch]
            self.optimizer.zero_grad(set_to_none=True)
            self._loss(self.model(x[index]), y[index]).backward()
            self.optimizer.step()

    @torch.inference_mode()
    def evaluate(self, split: str) -> tuple[float, float]:
        x, y = self.splits[split]
        self.model.eval()
        logits = torch.cat([self.model(x[i:i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])
        predicted = (logits[:, 0] > 0) if self.binary else logits.argmax(dim=1)
        labels = (y > 0.5) if self.binary else y
        return float(self._loss(logits, y)), float((predicted == labels).float().mean())


def versions() -> dict:
    return {"torch": torch.__version__}


def train(run: dict, data: dict, threads: int = 1, log=print) -> dict:
    """Train one run. Takes ownership of `data`: its arrays move into the trainer (the dict is emptied)."""
    configure(threads, run["seed"])
    shape, outputs = prepare(run, data)
    n_train = len(data["x_train"])
    return fit(Trainer(run, data, shape, outputs), run, n_train, log)
