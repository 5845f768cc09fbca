"""Batch augmentation (fastconv.datasets.transforms) against np.pad + slicing per sample with
the documented random draws reproduced, and BatchIterator's transform hook."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastconv import datasets as D
from fastconv.datasets.transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip
from reference import synthetic_digits


def _batch(rng, shape=(6, 2, 9, 7), dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def _ltrb(padding):
    if padding is None:
        return (0, 0, 0, 0)
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return tuple(padding) * 2
    return tuple(padding)


def _crop_reference(x, size, padding, mode, fill, seed):
    """np.pad of each sample, then the slice at the offsets drawn as documented: all tops
    (rng.integers(0, H'-h+1, N)), then all lefts."""
    left, top, right, bottom = _ltrb(padding)
    h, w = size
    rng = np.random.default_rng(seed)
    n = len(x)
    ph, pw = x.shape[2] + top + bottom, x.shape[3] + left + right
    tops = rng.integers(0, ph - h + 1, size=n)
    lefts = rng.integers(0, pw - w + 1, size=n)
    out = []
    for k in range(n):
        kw = {"constant_values": fill} if mode == "constant" else {}
        padded = np.pad(x[k], ((0, 0), (top, bottom), (left, right)), mode=mode, **kw)
        out.append(padded[:, tops[k]:tops[k] + h, lefts[k]:lefts[k] + w])
    return np.stack(out), tops, lefts


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("padding,size", [(2, (9, 7)), ((1, 3), (8, 8)), ((0, 1, 4, 2), (5, 6)), (None, (4, 3))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_crop_equals_pad_and_slice(mode, padding, size, dtype, rng):
    x = _batch(rng, dtype=dtype)
    x_before = x.copy()
    t = RandomCrop(size, padding=padding, padding_mode=mode, fill=1.5)
    y = t(x, np.random.default_rng(42))
    ref, tops, lefts = _crop_reference(x, size, padding, mode, 1.5, 42)
    assert y.shape == (6, 2) + size and y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(x, x_before)  # input untouched
    if padding is not None:
        assert len(set(zip(tops.tolist(), lefts.tolist()))) > 1  # offsets vary per sample


def test_random_crop_int_size_and_offsets_cover_range(rng):
    x = _batch(rng, (400, 1, 5, 5))
    y = RandomCrop(5, padding=1)(x, 3)
    _, tops, lefts = _crop_reference(x, (5, 5), 1, "constant", 0, 3)
    assert set(tops.tolist()) == {0, 1, 2} and set(lefts.tolist()) == {0, 1, 2}
    # a sample shifted by (dt, dl) = (top - 1, left - 1): the centre pixel lands accordingly
    for k in range(5):
        i, j = 2 + 1 - tops[k], 2 + 1 - lefts[k]
        assert y[k, 0, i, j] == x[k, 0, 2, 2]


@given(n=st.integers(1, 5), c=st.integers(1, 3), hw=st.tuples(st.integers(1, 8), st.integers(1, 8)),
       pad=st.tuples(*[st.integers(0, 3)] * 4), mode=st.sampled_from(["constant", "edge", "reflect", "symmetric"]),
       seed=st.integers(0, 2**32 - 1), data=st.data())
@settings(max_examples=40, deadline=None)
def test_random_crop_sweep(n, c, hw, pad, mode, seed, data):
    x = np.random.default_rng(seed).standard_normal((n, c) + hw)
    if mode == "reflect" and min(hw) == 1 and any(pad):
        mode = "symmetric"  # np.pad cannot reflect a 1-pixel edge with a pad > 0
    ph, pw = hw[0] + pad[1] + pad[3], hw[1] + pad[0] + pad[2]
    size = (data.draw(st.integers(1, ph)), data.draw(st.integers(1, pw)))
    y = RandomCrop(size, padding=pad, padding_mode=mode)(x, seed)
    np.testing.assert_array_equal(y, _crop_reference(x, size, pad, mode, 0, seed)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_horizontal_flip_mask(dtype, rng):
    x = _batch(rng, (50, 2, 4, 5), dtype)
    y = RandomHorizontalFlip(0.3)(x, np.random.default_rng(9))
    flip = np.random.default_rng(9).random(50) < 0.3
    assert 0 < flip.sum() < 50 and y.dtype == dtype and y.shape == x.shape
    np.testing.assert_array_equal(y[flip], x[flip][..., ::-1])
    np.testing.assert_array_equal(y[~flip], x[~flip])
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x, 0), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x, 0), x)


def test_normalize_per_channel(rng):
    x = _batch(rng, (3, 2, 4, 4), np.float32)
    y = Normalize([0.5, -1.0], [2.0, 0.25])(x)
    ref = (x.astype(np.float64) - np.array([0.5, -1.0])[None, :, None, None]) / np.array([2.0, 0.25])[None, :, None, None]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(Normalize(0.1, 0.3)(x.astype(np.float64)), (x - 0.1) / 0.3, rtol=1e-6)
    with pytest.raises(ValueError, match="mean has 3 values, but the images have 2 channels"):
        Normalize([0.0, 0.0, 0.0], 1.0)(x)


def test_seeds_decide_the_batch(rng):
    x = _batch(rng, (8, 1, 10, 10))
    t = Compose([RandomCrop(10, padding=2, padding_mode="reflect"), RandomHorizontalFlip()])
    a, b, c = t(x, 5), t(x, np.random.default_rng(5)), t(x, 6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_compose_applies_in_order(rng):
    x = _batch(rng, (4, 1, 6, 6))
    crop, flip, norm = RandomCrop(4), RandomHorizontalFlip(0.5), Normalize(1.0, 2.0)
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    y = Compose([crop, flip, norm])(x, g1)
    ref = norm(flip(crop(x, g2), g2))
    np.testing.assert_array_equal(y, ref)


def test_batch_iterator_transform(rng):
    images, labels = synthetic_digits(23, rng)
    plain = D.BatchIterator(images, labels, 5, shuffle=True, rng=7)
    flip = D.BatchIterator(images, labels, 5, shuffle=True, rng=7, transform=RandomHorizontalFlip(1.0))
    for epoch in range(2):
        for (x, y), (xt, yt) in zip(plain, flip):
            # the shuffling order does not change with a transform
            np.testing.assert_array_equal(y, yt)
            assert xt.shape == x.shape and xt.dtype == np.float32
            np.testing.assert_array_equal(xt, x[..., ::-1])
    # without a transform the order is the one the iterator always had: one permutation of
    # its generator per epoch
    g = np.random.default_rng(7)
    orders = [g.permutation(23), g.permutation(23)]
    plain = D.BatchIterator(images, labels, 5, shuffle=True, rng=7)
    got = [np.concatenate([y for _, y in plain]) for _ in range(2)]
    np.testing.assert_array_equal(got[0], labels[orders[0]])
    np.testing.assert_array_equal(got[1], labels[orders[1]])
    # the augmentation is fixed by the iterator's seed
    aug = Compose([RandomCrop(28, padding=2, padding_mode="edge"), RandomHorizontalFlip()])
    runs = [[x for x, _ in D.BatchIterator(images, labels, 5, shuffle=True, rng=11, transform=aug)] for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    other = [x for x, _ in D.BatchIterator(images, labels, 5, shuffle=True, rng=12, transform=aug)]
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], other))
    # normalize still applies before the transform
    x, _ = next(iter(D.BatchIterator(images, labels, 23, normalize=(0.5, 0.25), transform=RandomHorizontalFlip(1.0))))
    np.testing.assert_allclose(x[:, 0], ((images / 255.0 - 0.5) / 0.25)[..., ::-1], rtol=1e-5, atol=1e-5)


x4 = np.zeros((2, 1, 4, 4), np.float32)

ERROR_CASES = [
    (lambda: RandomCrop(0), ValueError, "size must be positive"),
    (lambda: RandomCrop(2.5), TypeError, "size must be an int or a pair of ints"),
    (lambda: RandomCrop((2, 2, 2)), TypeError, "size must be an int or a pair"),
    (lambda: RandomCrop(2, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: RandomCrop(2, padding=(1, 2, 3)), TypeError, "padding must be None, an int, a pair"),
    (lambda: RandomCrop(2, padding=1.0), TypeError, "padding must be None, an int"),
    (lambda: RandomCrop(2, padding_mode="wrap"), ValueError,
     "padding_mode must be one of 'constant', 'edge', 'reflect', 'symmetric', got"),
    (lambda: RandomCrop(2, fill="black"), TypeError, "fill must be a number"),
    (lambda: RandomCrop(5)(x4, 0), ValueError, "larger than the padded images"),
    (lambda: RandomCrop(2)(x4[0], 0), ValueError, "images must be 4-D (N, C, H, W)"),
    (lambda: RandomCrop(2)(x4.tolist(), 0), TypeError, "images must be a numpy.ndarray"),
    (lambda: RandomCrop(2)(x4, None), TypeError, "rng must be a numpy.random.Generator or an int seed"),
    (lambda: RandomCrop(2)(x4, 1.5), TypeError, "rng must be a numpy.random.Generator"),
    (lambda: RandomHorizontalFlip(1.5), ValueError, "p must be in [0, 1]"),
    (lambda: RandomHorizontalFlip(float("nan")), ValueError, "p must be in [0, 1]"),
    (lambda: RandomHorizontalFlip("0.5"), TypeError, "p must be a float"),
    (lambda: RandomHorizontalFlip()(x4.astype(complex), 0), TypeError, "images must have a real dtype"),
    (lambda: Normalize(0.0, 0.0), ValueError, "std must be non-zero"),
    (lambda: Normalize("a", 1.0), TypeError, "mean must be a float or a sequence of floats"),
    (lambda: Normalize([[0.0]], 1.0), ValueError, "mean must be a finite float or a 1-D sequence"),
    (lambda: Normalize(float("nan"), 1.0), ValueError, "mean must be a finite"),
    (lambda: Normalize([0.0, 1.0], [1.0, 2.0, 3.0]), ValueError, "one value per channel"),
    (lambda: Normalize(0.0, 1.0)(x4.astype(np.int32)), TypeError, "float dtype for Normalize"),
    (lambda: Compose(RandomCrop(2)), TypeError, "transforms must be a sequence of callables"),
    (lambda: Compose([RandomCrop(2), 3]), TypeError, "transforms[1] must be callable"),
    (lambda: D.BatchIterator(np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8), transform="flip"), TypeError,
     "transform must be callable"),
]


@pytest.mark.parametrize("make,exc,words", ERROR_CASES)
def test_errors(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    assert words in str(info.value)
