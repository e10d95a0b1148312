"""One training backend per framework; import only the one a job needs (TF's import alone takes seconds)."""

from importlib import import_module


def load(framework: str):
    return import_module(f"bnbench.backends.{framework}_backend")
