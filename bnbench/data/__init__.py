"""The dataset registry: name -> module. Adding a dataset is one entry here plus its module (and its
keys in workflow/schemas/config.schema.yaml, the config's description; a test keeps the two in step),
which defines
  make(**params)           the splits x_/y_ train, val, test (float32 samples; float32 0/1 labels for
                           a binary problem, int64 class labels otherwise); its keyword arguments are
                           the dataset's config keys
  training_size(params)    how many samples train under these settings
  problem(params)          why these settings cannot work (one line naming the fix), or None
Config validation, the CLI and the speed harness ask the registry, never a dataset by name.
"""

from __future__ import annotations

import inspect
from importlib import import_module
from types import ModuleType

from bnbench import BnbenchError

# name -> module bnbench.data.<name>. Imported when asked for, so that a job imports only its own dataset's
# code (and a change to one dataset's module reruns only its jobs: bnbench.provenance).
DATASETS = ("circles", "fashion_mnist")


def get(name: str) -> ModuleType:
    if name not in DATASETS:
        raise BnbenchError(f"unknown dataset {name!r}; use one of: {', '.join(DATASETS)}")
    return import_module(f"bnbench.data.{name}")


def params(name: str) -> tuple[str, ...]:
    """The settings that define the data itself (make's keyword arguments)."""
    return tuple(inspect.signature(get(name).make).parameters)


def make(name: str, data_params: dict) -> dict:
    """The dataset's splits; `data_params` as bnbench.config.dataset_params gives them."""
    return get(name).make(**data_params)


def training_size(name: str, settings: dict) -> int:
    return get(name).training_size(settings)


def problem(name: str, settings: dict) -> str | None:
    check = getattr(get(name), "problem", None)
    return check(settings) if check else None
