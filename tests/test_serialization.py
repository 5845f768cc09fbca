"""fastconv.save / fastconv.load: safetensors and npz files, PyTorch state-dict names, and
malformed or hostile files (crafted by hand: 8-byte little-endian header length + JSON
header + data)."""
import json
import os
import pickle
import re
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import fastconv
from fastconv import nn, serialization
from fastconv.models import MODELS, basic_block, cifar_resnet, lenet5, resnet8, vgg_small
from fastconv.nn.module import StateDictError
from fastconv.serialization import ModelFileError

from reference import tol

FORMATS = [".safetensors", ".npz"]
BUILD = {  # the smallest input each model takes
    "lenet5": (lambda **kw: lenet5(**kw), (2, 1, 28, 28)),
    "resnet8": (lambda **kw: MODELS["resnet8"](**kw), (2, 1, 28, 28)),
    "resnet20": (lambda **kw: MODELS["resnet20"](**kw), (2, 1, 16, 16)),
    "vgg_small": (lambda **kw: vgg_small(**kw), (2, 1, 16, 16)),
}


def trained_like(model, seed):
    """Give BatchNorm buffers non-default values, as after training (so they are tested)."""
    r = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = r.standard_normal(m.running_mean.shape)
            m.running_var[...] = r.uniform(0.5, 2.0, m.running_var.shape)
            m.num_batches_tracked[...] = r.integers(1, 1000)
            m.weight.data[...] = r.uniform(0.5, 1.5, m.weight.data.shape)
            m.bias.data[...] = r.standard_normal(m.bias.data.shape)
    return model


def assert_same_state(a, b):
    """Bitwise: same keys in the same order, dtypes, shapes and bytes."""
    assert list(a) == list(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert x.tobytes() == y.tobytes(), k


# -- the documented key tables ----------------------------------------------------------

def documented_keys(doc, **symbols):
    """{key: shape} from the "State-dict keys" literal block of a docstring, with ``{a,b}``
    and ``{0..n-1}`` expanded and the shape symbols (``C``, ``K``, ...) substituted;
    ``[projection]`` lines kept only if ``symbols["projection"]``."""
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith("::")
                 and any("State-dict keys" in p for p in lines[max(0, i - 4):i + 1]))
    table = {}

    def value(text):
        text = text.strip()
        if not re.fullmatch(r"[0-9A-Za-z+\-* ]+", text):
            raise AssertionError(f"bad expression {text!r}")
        return int(eval(text, {"__builtins__": {}}, symbols))  # digits, symbols and + - * only

    def expand(pattern):
        m = re.search(r"\{([^{}]*)\}", pattern)
        if m is None:
            return [pattern]
        body = m.group(1)
        if ".." in body:
            lo, hi = body.split("..")
            choices = [str(i) for i in range(value(lo), value(hi) + 1)]
        else:
            choices = body.split(",")
        return [k for c in choices for k in expand(pattern[:m.start()] + c + pattern[m.end():])]

    for line in lines[start + 2:]:
        if not line.strip():
            break
        m = re.fullmatch(r"\s+(\S+)\s+\(([^)]*)\)(\s+\[projection\])?\s*", line)
        assert m, f"unparsed line {line!r}"
        if m.group(3) and not symbols.get("projection"):
            continue
        shape = tuple(value(t) for t in m.group(2).split(",") if t.strip())
        for key in expand(m.group(1)):
            assert key not in table, f"{key} documented twice"
            table[key] = shape
    return table


def actual_keys(model):
    return {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("K", [10, 7])
def test_lenet5_key_table_is_its_state_dict(K):
    assert documented_keys(lenet5.__doc__, K=K) == actual_keys(lenet5(K))


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("C,K", [(1, 10), (3, 7)])
def test_cifar_resnet_key_table_is_its_state_dict(n, C, K):
    assert documented_keys(cifar_resnet.__doc__, n=n, C=C, K=K) == actual_keys(cifar_resnet(n, C, K))


@pytest.mark.parametrize("name,n", [("resnet8", 1), ("resnet20", 3)])
def test_resnet8_resnet20_keys_follow_the_table(name, n):
    assert f"n = {n}" in MODELS[name].__doc__
    assert documented_keys(cifar_resnet.__doc__, n=n, C=1, K=10) == actual_keys(MODELS[name]())
    example = re.search(r"``(\S+) (\([^)]*\))``", MODELS[name].__doc__)  # the example given
    assert actual_keys(MODELS[name]())[example.group(1)] == eval(example.group(2))


@pytest.mark.parametrize("I,O,stride", [(16, 16, 1), (16, 32, 2), (8, 8, 2), (4, 6, 1)])
def test_basic_block_key_table_is_its_state_dict(I, O, stride):
    projection = stride != 1 or I != O
    doc = documented_keys(basic_block.__doc__, I=I, O=O, projection=projection)
    assert doc == actual_keys(basic_block(I, O, stride))


@pytest.mark.parametrize("C,K", [(1, 10), (3, 7)])
def test_vgg_small_key_table_is_its_state_dict(C, K):
    assert documented_keys(vgg_small.__doc__, C=C, K=K) == actual_keys(vgg_small(C, K))


def test_models_docs_point_to_the_torch_definitions():
    assert "tests/torch_models.py" in fastconv.models.__doc__
    assert (Path(__file__).parent / "torch_models.py").is_file()


# -- round trips -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(BUILD))
def test_model_round_trip_is_bitwise(tmp_path, rng, name, fmt):
    build, shape = BUILD[name]
    m = trained_like(build(rng=1), 2)
    m.config.update(dataset="fashion-mnist", normalize=[0.286, 0.353])
    path = fastconv.save(m, tmp_path / f"m{fmt}")
    assert path == tmp_path / f"m{fmt}" and path.is_file()
    loaded = fastconv.load(path)
    assert isinstance(loaded, nn.Sequential) and loaded.config == m.config
    assert_same_state(loaded.state_dict(), m.state_dict())
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(loaded.eval()(x), m.eval()(x))
    assert serialization.load_model(path).config == m.config
    assert [p.name for p in tmp_path.iterdir()] == [f"m{fmt}"]  # no temporary file left


@pytest.mark.parametrize("fmt", FORMATS)
def test_float64_model_round_trip(tmp_path, rng, fmt):
    m = trained_like(resnet8(rng=0, dtype=np.float64), 3)
    loaded = fastconv.load(fastconv.save(m, tmp_path / f"m{fmt}"))
    assert loaded[0].weight.data.dtype == np.float64
    assert_same_state(loaded.state_dict(), m.state_dict())


@pytest.mark.parametrize("fmt", FORMATS)
def test_state_dict_round_trip_keeps_order_dtypes_and_bits(tmp_path, rng, fmt):
    big = np.arange(6, dtype=">f4").reshape(2, 3)  # byte-swapped input
    sd = OrderedDict([
        ("z.weight", rng.standard_normal((3, 4)).astype(np.float32)),
        ("a.count", np.array(7, np.int64)),          # 0-d, as num_batches_tracked
        ("10.x", rng.standard_normal(5)),            # float64
        ("2.x", np.array([np.nan, -0.0, np.inf], np.float32)),
        ("half", np.array([1.5, -2.25], np.float16)),
        ("mask", np.array([True, False])),
        ("u8", np.arange(4, dtype=np.uint8)),
        ("i32", np.arange(-2, 2, dtype=np.int32)),
        ("strided", np.arange(20.0).reshape(4, 5)[::2, ::-2]),
        ("big", big),
        ("empty", np.zeros((0, 3), np.float32)),
    ])
    loaded = fastconv.load(fastconv.save(sd, tmp_path / f"sd{fmt}"))
    assert type(loaded) is dict and list(loaded) == list(sd)  # file order = saved order
    for k, v in sd.items():
        assert loaded[k].dtype == v.dtype.newbyteorder("=") and loaded[k].shape == v.shape, k
        np.testing.assert_array_equal(loaded[k], v, err_msg=k)
        assert loaded[k].astype(v.dtype).tobytes() == np.ascontiguousarray(v).tobytes(), k
        assert loaded[k].flags.writeable and loaded[k].flags.c_contiguous


def test_save_accepts_a_module_without_config(tmp_path, rng):
    m = nn.Sequential(nn.Conv2d(2, 3, 3, rng=0), nn.BatchNorm2d(3))
    sd = fastconv.load(fastconv.save(m, tmp_path / "w.safetensors"))
    assert_same_state(sd, m.state_dict())
    other = nn.Sequential(nn.Conv2d(2, 3, 3, rng=5), nn.BatchNorm2d(3))
    other.load_state_dict(sd)
    assert_same_state(other.state_dict(), m.state_dict())
    with pytest.raises(ModelFileError, match="not a fastconv model.*bare state dict"):
        serialization.load_model(tmp_path / "w.safetensors")


def test_config_in_safetensors_metadata_and_npz_entry(tmp_path):
    from safetensors import safe_open

    m = lenet5(rng=0)
    m.config.update(dataset="mnist", normalize=[0.1307, 0.3081])
    fastconv.save(m, tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), framework="np") as f:
        meta = f.metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert json.loads(meta["fastconv.config"]) == m.config
    assert json.loads(meta["fastconv.keys"]) == list(m.state_dict())
    fastconv.save(m, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert json.loads(str(f["__config__"])) == m.config
        assert sorted(f.files) == sorted(["__config__"] + ["param/" + k for k in m.state_dict()])


def test_plain_npz_of_arrays_loads_as_a_state_dict(tmp_path):
    sd = lenet5(rng=0).state_dict()
    np.savez(tmp_path / "plain.npz", **sd)
    assert_same_state(fastconv.load(tmp_path / "plain.npz"), sd)


def test_force_and_atomic_writes(tmp_path, monkeypatch):
    m = lenet5(rng=0)
    path = fastconv.save(m, str(tmp_path / "m.safetensors"))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="force=True"):
        fastconv.save(lenet5(rng=1), path)
    assert path.read_bytes() == before

    def failing_writer(f, state, config):
        f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setitem(serialization.FORMATS, ".safetensors", (failing_writer, serialization._read_safetensors))
    with pytest.raises(RuntimeError, match="disk full"):
        fastconv.save(lenet5(rng=1), path, force=True)
    assert path.read_bytes() == before  # an interrupted save leaves the old file whole
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    monkeypatch.undo()
    fastconv.save(lenet5(rng=1), path, force=True)
    assert_same_state(fastconv.load(path).state_dict(), lenet5(rng=1).state_dict())
    nested = fastconv.save(m, tmp_path / "a" / "b" / "m.npz")  # parent folders are created
    assert nested.is_file()


def test_save_model_keeps_its_extension_rule(tmp_path):
    m = lenet5(rng=0)
    assert serialization.save_model(m, tmp_path / "a") == tmp_path / "a.npz"
    assert serialization.save_model(m, tmp_path / "b.pt") == tmp_path / "b.pt.npz"
    assert serialization.save_model(m, tmp_path / "c.safetensors") == tmp_path / "c.safetensors"
    assert serialization.model_path("d.npz") == Path("d.npz")
    with pytest.raises(ValueError, match="no config"):
        serialization.save_model(nn.Linear(2, 2), tmp_path / "e.npz")


def test_register_format(tmp_path, monkeypatch):
    monkeypatch.setattr(serialization, "FORMATS", dict(serialization.FORMATS))
    seen = {}

    def writer(f, state, config):
        seen["config"] = config
        f.write(b"x")

    serialization.register_format(".mine", writer, lambda p: (OrderedDict(w=np.ones(2)), None))
    fastconv.save(lenet5(), tmp_path / "m.mine")
    assert seen["config"]["model"] == "lenet5"
    assert list(fastconv.load(tmp_path / "m.mine")) == ["w"]
    serialization.register_format(".ro", None, lambda p: lenet5(rng=0))  # read-only
    (tmp_path / "m.ro").write_bytes(b"")
    assert isinstance(fastconv.load(tmp_path / "m.ro"), nn.Sequential)  # a reader may build the model
    with pytest.raises(ValueError, match=r"cannot write .*\['.mine', '.npz', '.safetensors'\]"):
        fastconv.save(lenet5(), tmp_path / "m.ro")
    with pytest.raises(ValueError, match="extension must be a string"):
        serialization.register_format("onnx", writer)
    with pytest.raises(TypeError, match="reader must be callable"):
        serialization.register_format(".x", None, 3)


# -- PyTorch -----------------------------------------------------------------------------

def _torch_model(name, seed):
    torch = pytest.importorskip("torch")
    from torch_models import TORCH_MODELS

    torch.manual_seed(seed)
    tm = TORCH_MODELS[name]()
    with torch.no_grad():  # BatchNorm statistics as after training
        for mod in tm.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.5, 2.0)
                mod.num_batches_tracked.fill_(123)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_()
    return tm.eval()


@pytest.mark.parametrize("name", sorted(BUILD))
def test_pytorch_state_dict_via_safetensors_loads_strictly(tmp_path, rng, name):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    tm = _torch_model(name, 0)
    save_file(tm.state_dict(), str(tmp_path / "torch.safetensors"))
    sd = fastconv.load(tmp_path / "torch.safetensors")
    assert isinstance(sd, dict)
    build, shape = BUILD[name]
    m = build(rng=9)
    m.load_state_dict(sd, strict=True)
    for k, v in tm.state_dict().items():
        assert m.state_dict()[k].tobytes() == v.numpy().tobytes(), k
        if k.endswith("num_batches_tracked"):
            assert sd[k].dtype == np.int64 and v.dtype == torch.int64
    x = rng.standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(m.eval()(x), expected, **tol(np.float32))


@pytest.mark.parametrize("name", sorted(BUILD))
def test_fastconv_file_loads_strictly_into_pytorch(tmp_path, rng, name):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    from torch_models import TORCH_MODELS

    build, shape = BUILD[name]
    m = trained_like(build(rng=4), 5)
    fastconv.save(m, tmp_path / "m.safetensors")
    tsd = load_file(str(tmp_path / "m.safetensors"))
    tm = TORCH_MODELS[name]()
    tm.load_state_dict(tsd, strict=True)
    for k, v in m.state_dict().items():
        assert tm.state_dict()[k].numpy().tobytes() == v.tobytes(), k
    nbt = [k for k in tsd if k.endswith("num_batches_tracked")]
    assert all(tsd[k].dtype == torch.int64 and tsd[k].dim() == 0 for k in nbt)
    x = rng.standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = tm.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(m.eval()(x), expected, **tol(np.float32))


# -- state dicts that do not fit ---------------------------------------------------------

def _bad_state():
    sd = resnet8(rng=0).state_dict()
    del sd["0.weight"]                                        # missing
    sd["extra.weight"] = np.zeros(3, np.float32)              # unexpected
    sd["8.weight"] = np.zeros((10, 65), np.float32)           # shape
    sd["1.weight"] = sd["1.weight"].astype(np.float16)        # float16
    sd["8.bias"] = np.arange(10, dtype=np.int32)              # float weight stored as int
    sd["1.num_batches_tracked"] = np.array(3.0)               # counter stored as float
    return sd


PROBLEMS = ["missing keys ['0.weight']", "unexpected keys ['extra.weight']",
            "'8.weight'] has shape (10, 65), but the model's has shape (10, 64)",
            "'1.weight'] has dtype float16", "'8.bias'] has dtype int32",
            "'1.num_batches_tracked'] has dtype float64 (expected an integer dtype)"]


def test_load_state_dict_lists_every_problem_and_changes_nothing():
    m = resnet8(rng=1)
    before = m.state_dict()
    with pytest.raises(StateDictError) as e:
        m.load_state_dict(_bad_state())
    for p in PROBLEMS:
        assert p in str(e.value), p
    assert len(e.value.problems) == len(PROBLEMS)
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    assert_same_state(m.state_dict(), before)
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        m.load_state_dict([("0.weight", np.zeros(1))])


def test_load_state_dict_casts_between_float32_and_float64():
    m32, m64 = resnet8(rng=1), resnet8(rng=2, dtype=np.float64)
    m32.load_state_dict(m64.state_dict())
    for k, v in m64.state_dict().items():
        assert m32.state_dict()[k].dtype == (np.int64 if "num_batches" in k else np.float32)
        np.testing.assert_array_equal(m32.state_dict()[k], v.astype(m32.state_dict()[k].dtype), err_msg=k)
    sd = m32.state_dict()
    sd["1.num_batches_tracked"] = np.array(5, np.int32)  # any integer counter is taken
    m64.load_state_dict(sd)
    assert m64[1].num_batches_tracked.dtype == np.int64 and int(m64[1].num_batches_tracked) == 5


@pytest.mark.parametrize("fmt", FORMATS)
def test_model_file_that_does_not_fit_lists_every_problem(tmp_path, fmt):
    m = resnet8(rng=0)
    path = tmp_path / f"bad{fmt}"
    if fmt == ".safetensors":
        from safetensors.numpy import save_file

        save_file(_bad_state(), str(path), metadata={"fastconv.config": json.dumps(m.config)})
    else:
        np.savez(path, __config__=np.array(json.dumps(m.config)),
                 **{"param/" + k: v for k, v in _bad_state().items()})
    with pytest.raises(ModelFileError) as e:
        fastconv.load(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: parameters do not fit resnet8: ")
    for p in PROBLEMS:
        assert p in msg, p
    assert "\n" not in msg


# -- malformed and hostile files ---------------------------------------------------------

def _craft(header, data=b"", length=None):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def _t(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def _valid_bytes():
    from safetensors.numpy import save

    m = lenet5(rng=0)
    return save(m.state_dict(), metadata={"fastconv.config": json.dumps(m.config)})


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["FASTCONV_PWNED"]),))


MALFORMED = {
    "empty file": lambda: b"",
    "shorter than the length field": lambda: b"\x10\x00\x00",
    "huge header length": lambda: _craft({"a": _t()}, b"\0" * 4, length=2 ** 63),
    "header length past the end": lambda: _craft({"a": _t()}, b"\0" * 4, length=10_000),
    "header length 2**40": lambda: _craft({"a": _t()}, b"\0" * 4, length=2 ** 40),
    "offsets past the end": lambda: _craft({"a": _t(shape=(2,), offsets=(0, 8))}, b"\0" * 4),
    "overlapping offsets": lambda: _craft({"a": _t(shape=(2,), offsets=(0, 8)),
                                           "b": _t(shape=(2,), offsets=(4, 12))}, b"\0" * 12),
    "a gap before the data": lambda: _craft({"a": _t(offsets=(4, 8))}, b"\0" * 8),
    "trailing bytes": lambda: _craft({"a": _t()}, b"\0" * 8),
    "offsets not matching the shape": lambda: _craft({"a": _t(shape=(3,), offsets=(0, 8))}, b"\0" * 8),
    "shape overflowing": lambda: _craft({"a": _t(shape=(2 ** 40, 2 ** 40), offsets=(0, 8))}, b"\0" * 8),
    "negative dimension": lambda: _craft({"a": _t(shape=(-1,))}, b"\0" * 4),
    "bad JSON": lambda: _craft(b'{"a": {"dtype": "F32", ', b"\0" * 4),
    "header not an object": lambda: _craft([1, 2, 3]),
    "unknown dtype string": lambda: _craft({"a": _t(dtype="F99")}, b"\0" * 4),
    "dtype NumPy lacks (BF16)": lambda: _craft({"a": _t(dtype="BF16", shape=(2,))}, b"\0" * 4),
    "non-string metadata": lambda: _craft({"__metadata__": {"fastconv.config": 1}, "a": _t()}, b"\0" * 4),
    "truncated real file": lambda: _valid_bytes()[: len(_valid_bytes()) // 2],
    "real file minus its last byte": lambda: _valid_bytes()[:-1],
    "an npz renamed": lambda: _npz_bytes(),
    "a pickle renamed": lambda: pickle.dumps(_Payload()),
    "random bytes": lambda: np.random.default_rng(0).bytes(4096),
    "config not JSON": lambda: _craft({"__metadata__": {"fastconv.config": "{model"}, "a": _t()}, b"\0" * 4),
    "config naming no model": lambda: _craft({"__metadata__": {"fastconv.config": '{"model": "alexnet"}'},
                                             "a": _t()}, b"\0" * 4),
    "config not a dict": lambda: _craft({"__metadata__": {"fastconv.config": "[1]"}, "a": _t()}, b"\0" * 4),
    "key order listing other keys": lambda: _craft({"__metadata__": {"fastconv.keys": '["b"]'}, "a": _t()},
                                                   b"\0" * 4),
    "key order not a list of str": lambda: _craft({"__metadata__": {"fastconv.keys": "[1]"}, "a": _t()},
                                                  b"\0" * 4),
}


def _npz_bytes():
    import io

    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(3))
    return buf.getvalue()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_safetensors_is_a_clear_error(tmp_path, monkeypatch, case):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("FASTCONV_PWNED", str(marker))
    path = tmp_path / "bad.safetensors"
    path.write_bytes(MALFORMED[case]())
    with pytest.raises(ModelFileError) as e:
        fastconv.load(path)
    assert str(e.value).startswith(f"{path}: ")
    assert "\n" not in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x93NUMPY not really"])
def test_malformed_npz_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="bad.npz: "):
        fastconv.load(path)


def test_npz_holding_a_bare_npy_and_truncated_npz(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    os.replace(tmp_path / "a.npy", tmp_path / "a.npz")
    with pytest.raises(ModelFileError, match="not an .npz archive"):
        fastconv.load(tmp_path / "a.npz")
    fastconv.save(lenet5(rng=0), tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "m.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="cannot read model file"):
        fastconv.load(tmp_path / "m.npz")


def test_npz_with_pickled_object_array_does_not_run_code(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("FASTCONV_PWNED", str(marker))
    np.savez(tmp_path / "evil.npz", **{"param/w": np.array([_Payload()], dtype=object)})
    with pytest.raises(ModelFileError, match="cannot read model file"):
        fastconv.load(tmp_path / "evil.npz")
    assert not marker.exists()


# -- bad arguments -----------------------------------------------------------------------

BAD_SAVE = [
    (lambda p: fastconv.save(3, p), TypeError, "obj must be a Module or a mapping"),
    (lambda p: fastconv.save([np.zeros(2)], p), TypeError, "obj must be a Module or a mapping"),
    (lambda p: fastconv.save({1: np.zeros(2)}, p), TypeError, "keys must be non-empty strings"),
    (lambda p: fastconv.save({"": np.zeros(2)}, p), TypeError, "keys must be non-empty strings"),
    (lambda p: fastconv.save({"a": [1.0, 2.0]}, p), TypeError, r"obj\['a'\] must be an ndarray"),
    (lambda p: fastconv.save({"a": np.array(["x"])}, p), ValueError, r"obj\['a'\] has dtype <U1"),
    (lambda p: fastconv.save({"a": np.array([object()])}, p), ValueError, r"obj\['a'\] has dtype object"),
    (lambda p: fastconv.save({"a": np.zeros(2, np.complex64)}, p), ValueError, "has dtype complex64"),
    (lambda p: fastconv.save({"__metadata__": np.zeros(2)}, p), ValueError, "reserved"),
    (lambda p: fastconv.save(lenet5(), 3), TypeError, "path must be a str or os.PathLike"),
    (lambda p: fastconv.save(lenet5(), p.with_suffix(".txt")), ValueError,
     r"extension must be one of \['.npz', '.safetensors'\], got '.txt'"),
    (lambda p: fastconv.save(lenet5(), p.with_suffix("")), ValueError, "got 'none'"),
    (lambda p: fastconv.save(lenet5(), p, force="yes"), TypeError, "force must be a bool"),
    (lambda p: fastconv.save(lenet5(), p, True), TypeError, "positional"),
    (lambda p: fastconv.save(_with_config({"model": "alexnet"}), p), ValueError, "obj.config must be a dict naming"),
    (lambda p: fastconv.save(_with_config({"model": "lenet5", "x": object()}), p), ValueError,
     "JSON-serialisable"),
    (lambda p: fastconv.load(3), TypeError, "path must be a str or os.PathLike"),
    # (.pt: never registered; .onnx is, once fastconv.onnx has been imported)
    (lambda p: fastconv.load(p.with_suffix(".pt")), ModelFileError,
     r"extension must be one of \[.*'.npz'.*'.safetensors'.*\], got '.pt'"),
    (lambda p: fastconv.load(p.parent / "missing.safetensors"), ModelFileError, "no such model file"),
    (lambda p: fastconv.load(p.parent), ModelFileError, "extension must be one of"),
]


def _with_config(config):
    m = lenet5()
    m.config = config
    return m


@pytest.mark.parametrize("i", range(len(BAD_SAVE)))
def test_bad_arguments(tmp_path, i):
    call, error, words = BAD_SAVE[i]
    with pytest.raises(error, match=words):
        call(tmp_path / "x.safetensors")
    assert not any(tmp_path.iterdir())  # nothing written


def test_unknown_extension_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)
    with pytest.raises(ValueError):
        fastconv.load("model.bin")


# -- command line ------------------------------------------------------------------------

def test_cli_train_save_safetensors_then_evaluate_and_init_from(mnist_dir, tmp_path):
    from test_cli import run

    model = tmp_path / "m.safetensors"
    r = run("train", "--data", mnist_dir, "--epochs", 1, "--train-limit", 256, "--save", model)
    assert r.returncode == 0, r.stderr
    assert f"saved model to {model}" in r.stdout and not (tmp_path / "m.safetensors.npz").exists()
    loaded = fastconv.load(model)
    assert loaded.config["model"] == "lenet5" and loaded.config["dataset"] == "mnist"
    e = run("evaluate", model, "--data", mnist_dir)
    assert e.returncode == 0, e.stderr
    assert "test accuracy on mnist: " in e.stdout
    # the --force check looks at the file that would be written
    again = run("train", "--data", mnist_dir, "--epochs", 1, "--train-limit", 64, "--save", model)
    assert again.returncode == 2 and f"{model} already exists" in again.stderr
    # --init-from a bare state dict (as PyTorch's, saved with safetensors) and freeze
    fastconv.save(loaded.state_dict(), tmp_path / "weights.safetensors")
    tuned = tmp_path / "tuned.npz"
    t = run("train", "--data", mnist_dir, "--epochs", 1, "--train-limit", 64, "--init-from",
            tmp_path / "weights.safetensors", "--freeze", "0,3", "--save", tuned)
    assert t.returncode == 0, t.stderr
    b = fastconv.load(tuned)
    for k in ("0.weight", "3.bias"):
        np.testing.assert_array_equal(b.state_dict()[k], loaded.state_dict()[k])
    bad = run("train", "--model", "resnet8", "--data", mnist_dir, "--epochs", 1, "--train-limit", 64,
              "--init-from", tmp_path / "weights.safetensors")
    assert bad.returncode == 2 and "missing keys" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 100)
    j = run("evaluate", junk, "--data", mnist_dir)
    assert j.returncode == 2 and "junk.safetensors" in j.stderr and len(j.stderr.strip().splitlines()) == 1


def test_bfloat16_tensor_says_what_to_do(tmp_path):
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(_craft({"w": _t(dtype="BF16", shape=(2,))}, b"\0" * 4))
    with pytest.raises(ModelFileError, match="tensor 'w' has an unsupported dtype.*convert it to float32"):
        fastconv.load(path)


_SWEEP_DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_]


@pytest.mark.parametrize("fmt", FORMATS)
def test_random_state_dicts_round_trip(tmp_path, fmt):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    names = st.text(st.sampled_from("ab9._/é-"), min_size=1, max_size=8).filter(lambda k: k != "__metadata__")
    entry = st.tuples(st.lists(st.integers(0, 3), max_size=3), st.sampled_from(_SWEEP_DTYPES),
                      st.integers(0, 2**32 - 1))

    @settings(max_examples=25, deadline=None)
    @given(st.dictionaries(names, entry, max_size=5))
    def check(spec):
        sd = OrderedDict()
        for k, (shape, dtype, seed) in spec.items():
            raw = np.random.default_rng(seed).bytes(int(np.prod(shape)) * np.dtype(dtype).itemsize)
            a = np.frombuffer(raw, np.uint8).copy()
            sd[k] = (a.astype(bool) if dtype is np.bool_ else a.view(dtype)).reshape(shape)
        loaded = fastconv.load(fastconv.save(sd, tmp_path / f"r{fmt}", force=True))
        assert_same_state(loaded, sd)  # NaN payloads and -0.0 included: bytes compared

    check()


def test_bfloat16_refused_even_when_numpy_knows_it(tmp_path):
    pytest.importorskip("ml_dtypes")  # registers bfloat16 with NumPy (onnx imports it)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(_craft({"w": _t(dtype="BF16", shape=(2,))}, b"\0" * 4))
    with pytest.raises(ModelFileError, match="tensor 'w' has an unsupported dtype \\(dtype bfloat16;"):
        fastconv.load(path)
    path.write_bytes(_craft({"w": _t(dtype="C64", shape=(1,), offsets=(0, 8))}, b"\0" * 8))
    with pytest.raises(ModelFileError, match="tensor 'w' has an unsupported dtype \\(dtype complex64;"):
        fastconv.load(path)


def test_saved_files_get_the_usual_permissions(tmp_path):
    # mkstemp creates 0600 files; a saved model must be as readable as any file the user
    # writes (0666 minus the umask), and no temporary file may be left behind.
    import os
    import stat

    mask = os.umask(0o022)
    try:
        path = fastconv.save({"w": np.ones(3, np.float32)}, tmp_path / "w.safetensors")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
