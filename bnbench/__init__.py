"""bnbench: where Batch Normalization belongs, measured in Keras and PyTorch across seeds."""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent


class BnbenchError(Exception):
    """An error the user can fix; printed as one line by the CLI and the Snakefile."""
