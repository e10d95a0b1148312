"""PyTorch: spec -> nn.Sequential; a short plain loop (same batches as Keras)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bnbench import bn as bnmap
from bnbench import spec as specs
from bnbench.training import fit

EVAL_BATCH = 8192


def configure(threads: int, seed: int) -> None:
    """Pin torch to the rule's threads and make every op deterministic."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already fixed once parallel work has run in this process
        pass
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def batch_norm(settings: bnmap.BNSettings, features: int) -> nn.BatchNorm1d:
    layer = nn.BatchNorm1d(features, **bnmap.torch_kwargs(settings))
    for name, trainable in bnmap.torch_trainable(settings).items():
        if layer.affine and not trainable:
            getattr(layer, name).requires_grad_(False)
    return layer


def build_model(layers: list, n_features: int, weights: list) -> nn.Sequential:
    modules, features, dense_weights = [], n_features, iter(weights)
    for layer in layers:
        if isinstance(layer, specs.Dense):
            kernel, bias = next(dense_weights)
            linear = nn.Linear(features, layer.units, bias=layer.use_bias)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(kernel.T))  # torch stores [out, in]
                if layer.use_bias:
                    linear.bias.copy_(torch.from_numpy(bias))
            modules.append(linear)
            features = layer.units
        elif isinstance(layer, specs.BatchNorm):
            modules.append(batch_norm(layer.settings, features))
        elif isinstance(layer, specs.ReLU):
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


class Trainer:
    def __init__(self, run: dict, n_features: int):
        layers = specs.build_spec(run["arch"], run["bn"])
        self.model = build_model(layers, n_features, specs.initial_weights(layers, n_features, run["seed"]))
        opt = run["optimizer"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=opt["learning_rate"], momentum=opt["momentum"],
                                         nesterov=opt["nesterov"])
        self.loss_fn = nn.BCEWithLogitsLoss()

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> None:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(torch.from_numpy(x)), torch.from_numpy(y.reshape(-1, 1)))
        loss.backward()
        self.optimizer.step()

    @torch.inference_mode()
    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        self.model.eval()
        logits = torch.cat([self.model(torch.from_numpy(x[i:i + EVAL_BATCH]))
                            for i in range(0, len(x), EVAL_BATCH)])[:, 0]
        target = torch.from_numpy(y.astype(np.float32))
        loss = float(self.loss_fn(logits, target))
        return loss, float(((logits > 0) == (target > 0.5)).float().mean())


def versions() -> dict:
    return {"torch": torch.__version__}


def train(run: dict, data: dict, threads: int = 1, log=print) -> dict:
    configure(threads, run["seed"])
    return fit(Trainer(run, data["x_train"].shape[1]), run, data, log)
