"""One training backend per framework; import only the one a job needs (TF's import alone takes seconds)."""

from importlib import import_module

from bnbench import BnbenchError

FRAMEWORKS = ("keras", "torch")


def load(framework: str):
    if framework not in FRAMEWORKS:
        raise BnbenchError(f"unknown framework {framework!r}; use one of: {', '.join(FRAMEWORKS)}")
    return import_module(f"bnbench.training.backends.{framework}")
