"""Fashion-MNIST acquisition: IDX parsing, checksums, the download path against a local HTTP server."""

import functools
import gzip
import http.server
import shutil
import struct
import threading

import numpy as np
import pytest

from bnbench.data import fashion_mnist as fm


def write_idx(path, magic, array, dims=None, truncate=0):
    dims = array.shape if dims is None else dims
    raw = struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + array.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as handle:
        handle.write(raw[:len(raw) - truncate])
    return path


def test_idx_parser_reads_valid_file(tmp_path):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    path = write_idx(tmp_path / "x.gz", fm.IMAGE_MAGIC, images)
    np.testing.assert_array_equal(fm.parse_idx(path, fm.IMAGE_MAGIC, (3, 28, 28)), images)


@pytest.mark.parametrize(
    "magic, dims, truncate, message",
    [
        (2049, None, 0, "bad IDX magic 2049, expected 2051"),
        (2051, None, 100, "expected 2352 (truncated?)"),
        (2051, (4, 28, 28), 0, "IDX shape (4, 28, 28), expected (3, 28, 28)"),
    ],
)
def test_idx_parser_rejects_bad_files(tmp_path, magic, dims, truncate, message):
    path = write_idx(tmp_path / "x.gz", magic, np.zeros((3, 28, 28)), dims, truncate)
    with pytest.raises(fm.DataError, match="datasets.fashion_mnist.dir") as err:
        fm.parse_idx(path, fm.IMAGE_MAGIC, (3, 28, 28))
    assert message in str(err.value) and str(path) in str(err.value)


def test_real_files_parse_with_documented_facts(fashion_dir):
    data = fm.make(dir=str(fashion_dir), validation_size=5000)
    assert data["x_train"].shape == (55000, 28, 28) and data["x_val"].shape == (5000, 28, 28)
    assert data["x_test"].shape == (10000, 28, 28) and data["x_train"].dtype == np.float32
    assert data["x_train"].min() == 0.0 and data["x_train"].max() == 1.0
    all_train = np.concatenate([data["y_val"], data["y_train"]])
    assert list(all_train[:10]) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert list(data["y_test"][:10]) == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.bincount(data["y_test"]).tolist() == [1000] * 10
    pixels = np.concatenate([data["x_val"], data["x_train"]])
    assert pixels.mean() == pytest.approx(0.28604, abs=1e-4)
    subset = fm.make(dir=str(fashion_dir), validation_size=1000, train_subset=300)
    assert len(subset["x_train"]) == 300 and len(subset["x_val"]) == 1000
    np.testing.assert_array_equal(subset["x_train"], pixels[1000:1300])  # never the validation images


def test_corrupted_file_in_dir_names_file_and_fix(tmp_path, fashion_dir):
    for name in fm.FILES:
        shutil.copy(fashion_dir / name, tmp_path / name)
    with open(tmp_path / "t10k-labels-idx1-ubyte.gz", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01")
    with pytest.raises(fm.DataError, match=r"t10k-labels-idx1-ubyte.gz: MD5 checksum mismatch.*datasets.fashion_mnist.dir"):
        fm.make(dir=str(tmp_path))
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(fm.DataError, match=r"train-labels-idx1-ubyte.gz: missing; set datasets.fashion_mnist.dir"):
        fm.make(dir=str(tmp_path))


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a folder; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_verifies_and_moves_into_place(tmp_path, fashion_dir, http_server):
    root, url = http_server
    for name in fm.FILES:
        shutil.copy(fashion_dir / name, root / name)
    dest = tmp_path / "downloads"
    folder = fm.locate(None, dest, mirrors=["http://127.0.0.1:1/", url], keras_cache=tmp_path / "none")
    assert folder == dest and sorted(p.name for p in dest.iterdir()) == sorted(fm.FILES)
    assert all(fm.md5(dest / name) == md5 for name, md5 in fm.FILES.items())


def test_download_with_bad_checksum_leaves_nothing(tmp_path, http_server):
    root, url = http_server
    write_idx(root / "train-images-idx3-ubyte.gz", fm.IMAGE_MAGIC, np.zeros((2, 28, 28)))
    dest = tmp_path / "downloads"
    with pytest.raises(fm.DataError, match=r"train-images-idx3-ubyte.gz: download failed.*MD5 checksum mismatch"):
        fm.download("train-images-idx3-ubyte.gz", dest, [url], retries=2)
    assert list(dest.iterdir()) == []


def test_no_network_and_no_local_copy_says_what_to_set(tmp_path):
    dest = tmp_path / "downloads"
    with pytest.raises(fm.DataError, match=r"download failed from every mirror.*set datasets.fashion_mnist.dir"):
        fm.locate(None, dest, mirrors=["http://127.0.0.1:1/"], keras_cache=tmp_path / "none")
    assert not any(dest.iterdir())
