"""Sensitivity sweeps: the axes a dataset's `sweeps:` may vary, one factor at a time around its own settings.

An axis is one entry of AXES: which run setting it changes, whether its values are whole numbers, and how
its figures draw it. A sweep point is (axis, value); the base run of a dataset (its own settings) is the
point ("base", None), and a swept value equal to the base setting *is* the base run (no duplicate run).
Config, workflow, tables, claims and figures all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE = "base"  # the `sweep` of a run at the dataset's own settings
# The `sweep` of a crossed run (variance by source, bnbench.analysis.variance): the dataset's own settings with
# `sweep_value` as the data-order seed and `seed` as the initialization seed; not an axis of AXES.
ORDER_SEED = "order_seed"


@dataclass(frozen=True)
class Axis:
    name: str
    setting: tuple[str, ...]  # where the value goes in a run's settings (bnbench.config.resolve_run)
    whole: bool  # whole numbers (batch size) rather than real ones
    log_scale: bool  # figures draw it on a logarithmic x axis
    label: str


AXES = {axis.name: axis for axis in (
    Axis("learning_rate", ("optimizer", "learning_rate"), whole=False, log_scale=True, label="learning rate"),
    Axis("batch_size", ("batch_size",), whole=True, log_scale=True, label="batch size"),
    Axis("init_scale", ("init_scale",), whole=False, log_scale=True, label="initial kernel scale"),
    Axis("dropout", ("dropout",), whole=False, log_scale=False, label="dropout rate"),
)}


def normalized(axis: str, value):
    """The value as runs carry it: an int for whole-number axes, else a float (YAML reads 1 as an int)."""
    return int(value) if AXES[axis].whole else float(value)


def base_value(axis: str, settings: dict):
    """The dataset's own value of `axis` (settings: a dataset's config entry, defaults filled in)."""
    value = settings
    for key in AXES[axis].setting:
        value = value[key]
    return normalized(axis, value)


def apply(run: dict, axis: str, value) -> dict:
    """A copy of a run's settings with `axis` set to `value` (nested settings copied, not shared)."""
    *outer, last = AXES[axis].setting
    run = dict(run)
    target = run
    for key in outer:
        target[key] = dict(target[key])
        target = target[key]
    target[last] = normalized(axis, value)
    return run


def points(settings: dict) -> list[tuple[str, object]]:
    """The dataset's sweep points other than its base run, in config order: (axis, value) for every swept
    value that differs from the base setting."""
    return [(axis, normalized(axis, value)) for axis, values in settings.get("sweeps", {}).items()
            for value in values if normalized(axis, value) != base_value(axis, settings)]


def value_text(value) -> str:
    """A sweep value as paths and labels show it: 0.003, 1e-05, 32, 10 (never 10.0 or 0.0030000)."""
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def point_folder(sweep: str, value) -> str:
    """The path component naming a sweep point ("" for the base run): learning_rate=0.003."""
    return "" if sweep == BASE else f"{sweep}={value_text(value)}"


def setting_column(axis: str) -> str:
    """The summary.csv column holding a run's effective value of `axis` (run.optimizer.learning_rate, ...)."""
    return "run." + ".".join(AXES[axis].setting)
