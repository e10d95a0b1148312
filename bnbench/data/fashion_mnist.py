"""Fashion-MNIST: find or download the four official files, verify their MD5, parse IDX, split.

Sources, in order: `dir` from config (a folder holding the four files), a complete Keras cache
(~/.keras/datasets/fashion-mnist/), else a download from the mirrors into `download_dir` — into a
temporary file, verified, then moved into place, so a partial or corrupt file is never left behind.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from bnbench import BnbenchError

FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
MIRRORS = [
    "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
]
KERAS_CACHE = Path.home() / ".keras" / "datasets" / "fashion-mnist"
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
FIX = "set datasets.fashion_mnist.dir to a folder holding the four official files"


class DataError(BnbenchError):
    pass


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: missing; {FIX}")
    if md5(path) != FILES[path.name]:
        raise DataError(f"{path}: MD5 checksum mismatch (truncated or corrupted); replace the file or {FIX}")


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() and md5(folder / name) == checksum for name, checksum in FILES.items())


def _progress(name: str, done: int, total: int | None) -> None:
    if total:
        print(f"\r  {name}: {done / total:6.1%} of {total / 1e6:.1f} MB", end="", file=sys.stderr, flush=True)


def download(name: str, dest: Path, mirrors: list[str], retries: int = 3, timeout: float = 30) -> Path:
    """Fetch one file (retrying each mirror), verify it, then move it into place."""
    dest.mkdir(parents=True, exist_ok=True)
    target, tmp = dest / name, dest / f".{name}.part"
    errors = []
    for mirror in mirrors:
        for attempt in range(1, retries + 1):
            try:
                with urllib.request.urlopen(mirror.rstrip("/") + "/" + name, timeout=timeout) as response, \
                        open(tmp, "wb") as out:
                    total, done = int(response.headers.get("Content-Length") or 0) or None, 0
                    while block := response.read(1 << 16):
                        out.write(block)
                        done += len(block)
                        _progress(name, done, total)
                print(file=sys.stderr)
                if md5(tmp) != FILES[name]:
                    raise DataError(f"{name} from {mirror}: MD5 checksum mismatch")
                os.replace(tmp, target)
                return target
            except (OSError, urllib.error.URLError, DataError) as err:
                tmp.unlink(missing_ok=True)
                errors.append(f"{mirror} ({err})")
                if attempt < retries:
                    time.sleep(min(2 ** attempt, 10) * 0.1)
    raise DataError(f"{name}: download failed from every mirror, last: {errors[-1]}; no network? {FIX}")


def locate(dir: str | None, download_dir: str | Path, mirrors: list[str] | None = None,
           keras_cache: Path = KERAS_CACHE) -> Path:
    """The folder holding the four verified files (see the module docstring for the order)."""
    if dir:
        folder = Path(dir)
        for name in FILES:
            verify(folder / name)
        return folder
    if _complete(keras_cache):
        return keras_cache
    download_dir = Path(download_dir)
    for name in FILES:
        if not ((download_dir / name).is_file() and md5(download_dir / name) == FILES[name]):
            print(f"downloading {name}", file=sys.stderr)
            download(name, download_dir, mirrors or MIRRORS)
    return download_dir


def parse_idx(path: Path, magic: int, shape: tuple[int, ...]) -> np.ndarray:
    """Parse a gzipped IDX file, checking its magic number and dimensions."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable gzip file ({err}); {FIX}") from None
    ndim = len(shape)
    header = 4 + 4 * ndim
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != magic:
        found = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else None
        raise DataError(f"{path}: bad IDX magic {found}, expected {magic}; {FIX}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if dims[1:] != shape[1:] or (shape[0] and dims[0] != shape[0]):
        raise DataError(f"{path}: IDX shape {dims}, expected {shape}; {FIX}")
    if len(raw) - header != int(np.prod(dims)):
        raise DataError(f"{path}: IDX data holds {len(raw) - header} bytes, expected {int(np.prod(dims))} "
                        f"(truncated?); {FIX}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


TRAIN_IMAGES = 60_000


def training_size(settings: dict) -> int:
    """The training images left after validation (or the first train_subset of them)."""
    remaining = TRAIN_IMAGES - settings["validation_size"]
    return min(settings["train_subset"] or remaining, remaining)


def problem(settings: dict) -> str | None:
    """A train_subset larger than what validation leaves would be capped silently."""
    remaining = TRAIN_IMAGES - settings["validation_size"]
    if settings.get("train_subset") and settings["train_subset"] > remaining:
        return (f"train_subset ({settings['train_subset']}) is larger than the {remaining} training images that "
                f"validation_size {settings['validation_size']} leaves; lower train_subset (or null for all of them)")
    return None


def make(dir: str | None = None, download_dir: str = "resources/downloads/fashion-mnist",
         validation_size: int = 5000, train_subset: int | None = None, mirrors: list[str] | None = None,
         n_train: int = TRAIN_IMAGES, n_test: int = 10000) -> dict:
    """Splits: the first `validation_size` training images validate and are never trained on;
    training uses the rest (or its first `train_subset`); test is the 10 000 official test images.
    Pixels are float32 in [0, 1]; labels int64.
    """
    folder = locate(dir, download_dir, mirrors)
    images = parse_idx(folder / "train-images-idx3-ubyte.gz", IMAGE_MAGIC, (n_train, 28, 28))
    labels = parse_idx(folder / "train-labels-idx1-ubyte.gz", LABEL_MAGIC, (n_train,))
    test_images = parse_idx(folder / "t10k-images-idx3-ubyte.gz", IMAGE_MAGIC, (n_test, 28, 28))
    test_labels = parse_idx(folder / "t10k-labels-idx1-ubyte.gz", LABEL_MAGIC, (n_test,))
    train = slice(validation_size, None if train_subset is None else validation_size + train_subset)

    def scale(x):
        return (x.astype(np.float32) / np.float32(255.0))

    return {"x_train": scale(images[train]), "y_train": labels[train].astype(np.int64),
            "x_val": scale(images[:validation_size]), "y_val": labels[:validation_size].astype(np.int64),
            "x_test": scale(test_images), "y_test": test_labels.astype(np.int64)}
