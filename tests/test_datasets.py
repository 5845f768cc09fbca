"""IDX loading, validation, checksummed download (local server) and batching."""
import gzip
import hashlib
import http.server
import os
import threading
from functools import partial

import numpy as np
import pytest

from fastconv import datasets as D
from reference import synthetic_digits, write_idx


def _write_split(folder, rng, n=20, split="train", gz=True):
    images, labels = synthetic_digits(n, rng)
    ext = ".gz" if gz else ""
    img_name, lab_name = D.DATASETS["mnist"].files[split]
    write_idx(folder / (img_name + ext), images, D.IDX_IMAGES_MAGIC)
    write_idx(folder / (lab_name + ext), labels, D.IDX_LABELS_MAGIC)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_load_roundtrip(tmp_path, rng, gz):
    images, labels = _write_split(tmp_path, rng, gz=gz)
    x, y = D.load_mnist(tmp_path, "train")
    assert x.dtype == np.uint8 and y.dtype == np.uint8
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)


def test_root_resolution_env_and_subfolder(tmp_path, rng, monkeypatch):
    sub = tmp_path / "mnist"
    sub.mkdir()
    images, _ = _write_split(sub, rng, split="test")
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path))
    x, _ = D.load_mnist(split="test")
    np.testing.assert_array_equal(x, images)
    monkeypatch.delenv("FASTCONV_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert D.default_cache_dir("mnist") == tmp_path / "cache" / "fastconv" / "mnist"
    with pytest.raises(D.DatasetNotFoundError) as e:
        D.load_mnist(split="test")
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte" in msg and str(tmp_path / "cache") in msg and "download" in msg


def test_missing_folder_message_says_how_to_get_data(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        D.load_fashion_mnist(tmp_path / "nowhere", "train")
    assert "nowhere" in str(e.value) and "dataset-fashion-mnist" in str(e.value)


def _corrupt(folder, rng, how):
    images, labels = synthetic_digits(10, rng)
    img = folder / "train-images-idx3-ubyte.gz"
    lab = folder / "train-labels-idx1-ubyte.gz"
    data = write_idx(img, images, D.IDX_IMAGES_MAGIC)
    write_idx(lab, labels, D.IDX_LABELS_MAGIC)
    if how == "truncated_gzip":
        raw = img.read_bytes()
        img.write_bytes(raw[: len(raw) // 2])
    elif how == "truncated_data":
        with gzip.open(img, "wb") as f:
            f.write(data[:-100])
    elif how == "bad_magic":
        write_idx(img, images, 2049)
    elif how == "wrong_dims":
        write_idx(img, images[:, :20, :20], D.IDX_IMAGES_MAGIC)
    elif how == "count_mismatch":
        write_idx(lab, labels[:7], D.IDX_LABELS_MAGIC)
    elif how == "not_gzip":
        img.write_bytes(b"this is not gzip at all")
    elif how == "missing_labels":
        lab.unlink()


@pytest.mark.parametrize(
    "how,words",
    [
        ("truncated_gzip", "truncated or corrupt"),
        ("truncated_data", "truncated or corrupt"),
        ("bad_magic", "magic number 2049, expected 2051"),
        ("wrong_dims", "must have shape (N, 28, 28)"),
        ("count_mismatch", "10 images but train-labels-idx1-ubyte.gz has 7 labels"),
        ("not_gzip", "cannot decompress"),
        ("missing_labels", "found train-images-idx3-ubyte.gz but not train-labels-idx1-ubyte"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, rng, how, words):
    _corrupt(tmp_path, rng, how)
    with pytest.raises(D.DatasetError) as e:
        D.load_mnist(tmp_path, "train")
    assert words in str(e.value)
    assert str(tmp_path) in str(e.value)


@pytest.fixture
def file_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/'served' (a stand-in for a mirror)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _fake_info(served, url_ok, url_missing, rng):
    images, labels = synthetic_digits(12, rng)
    sums = {}
    for split in ("train", "test"):
        for stem, arr, magic in zip(D.DATASETS["mnist"].files[split], (images, labels),
                                    (D.IDX_IMAGES_MAGIC, D.IDX_LABELS_MAGIC)):
            data = write_idx(served / (stem + ".gz"), arr, magic)
            sums[stem] = hashlib.sha256(data).hexdigest()
    info = D.DatasetInfo("mnist", D.DATASETS["mnist"].files, sums, (url_missing, url_ok), 0.1, 0.3)
    return info, images, labels


def test_download_verifies_and_falls_back_to_next_mirror(tmp_path, rng, file_server, monkeypatch):
    served, url = file_server
    info, images, labels = _fake_info(served, url, url + "missing/", rng)
    monkeypatch.setitem(D.DATASETS, "mnist", info)
    dest = tmp_path / "dest"
    x, y = D.load_mnist(dest, "train", download=True)
    np.testing.assert_array_equal(x, images)
    assert sorted(p.name for p in dest.iterdir()) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    # second call reads the cache, no download
    monkeypatch.setattr(D, "_urlopen", lambda *a, **k: pytest.fail("downloaded again"))
    np.testing.assert_array_equal(D.load_mnist(dest, "train")[1], labels)


def test_download_checksum_mismatch_leaves_no_file(tmp_path, rng, file_server, monkeypatch):
    served, url = file_server
    info, _, _ = _fake_info(served, url, url + "missing/", rng)
    bad = D.DatasetInfo(info.name, info.files, {k: "0" * 64 for k in info.sha256}, info.mirrors, 0.1, 0.3)
    monkeypatch.setitem(D.DATASETS, "mnist", bad)
    dest = tmp_path / "dest"
    with pytest.raises(D.DatasetError) as e:
        D.load_mnist(dest, "test", download=True)
    assert "checksum mismatch" in str(e.value) and "404" in str(e.value)
    assert os.listdir(dest) == []  # neither the target nor a .part file


def test_download_interrupted_stream_leaves_no_file(tmp_path, rng, monkeypatch):
    class Broken:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self, n=-1):
            raise ConnectionResetError("connection reset")

    monkeypatch.setattr(D, "_urlopen", lambda url, timeout=30: Broken())
    with pytest.raises(D.DatasetError, match="connection reset"):
        D.download_file(D.DATASETS["mnist"], "t10k-labels-idx1-ubyte", tmp_path)
    assert os.listdir(tmp_path) == []


def test_batch_iterator(rng):
    images, labels = synthetic_digits(10, rng)
    it = D.BatchIterator(images, labels, batch_size=4)
    batches = list(it)
    assert len(it) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], images[:4] / 255.0, rtol=1e-6)
    assert len(D.BatchIterator(images, labels, 4, drop_last=True)) == 2
    norm = next(iter(D.BatchIterator(images, labels, 10, normalize=(0.5, 0.25))))[0]
    np.testing.assert_allclose(norm[:, 0], (images / 255.0 - 0.5) / 0.25, rtol=1e-5, atol=1e-5)
    a = [y for _, y in D.BatchIterator(images, labels, 3, shuffle=True, rng=7)]
    b = [y for _, y in D.BatchIterator(images, labels, 3, shuffle=True, rng=7)]
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert sorted(np.concatenate(a).tolist()) == sorted(labels.tolist())
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        D.BatchIterator(images, labels, 0)


def test_real_mnist_checksums(mnist_dir):
    for split in ("train", "test"):
        x, y = D.load_mnist(mnist_dir, split)
        assert x.shape == ((60000, 28, 28) if split == "train" else (10000, 28, 28))
        for stem, arr in zip(D.DATASETS["mnist"].files[split], (x, y)):
            with gzip.open(mnist_dir / (stem + ".gz"), "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == D.DATASETS["mnist"].sha256[stem]
