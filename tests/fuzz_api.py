"""Throw random, mostly invalid arguments at the functional API (run in a subprocess).

``python fuzz_api.py EXAMPLES`` runs hypothesis over conv2d, conv2d_backward and the four
pooling functions (six calls an example, counted on the first line it prints), then the
adaptive pools, maxout and softmax (counted on a second line), then pad, pad_backward and
conv2d's padding modes (a third line). Documented outcomes are a
result, TypeError, ValueError or MemoryError; anything else is printed with its traceback
and the script exits 1. A segfault or a hang kills the process, which the calling test
sees as a non-zero exit or a timeout.
"""
import sys
import traceback
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv

DOCUMENTED = (TypeError, ValueError, MemoryError)
DTYPES = [np.float32, np.float64, np.float16, np.int32, np.bool_, np.complex64, object]
outcomes = Counter()

small = st.integers(-2, 7)
_invalid_sizes = st.one_of(
    small, st.sampled_from([2**31, 2**62, -(2**62)]), st.floats(-2, 4), st.booleans(),
    st.tuples(small, small), st.tuples(small, small, small), st.none(),
    st.sampled_from(["same", "valid", "full", ""]),
)
# Four in five sizes are plausible (1 or 2), so that whole calls often reach the kernels.
sizes = st.integers(0, 4).flatmap(lambda i: _invalid_sizes if i == 4 else st.integers(1, 2))
pads = st.integers(0, 2).flatmap(lambda i: sizes if i == 2 else st.just(0))
flags = st.integers(0, 4).flatmap(lambda i: _invalid_sizes if i == 4 else st.booleans())


@st.composite
def arrays(draw, ndim=4):
    # Integer draws decide each property with fixed odds: most arrays are plausible
    # (float32, the right ndim, non-empty), so that many calls reach the kernels.
    # (hypothesis favours small integers, so 0 is always the plausible choice)
    if draw(st.integers(0, 19)) == 19:  # not an array at all
        return draw(st.sampled_from([None, 1.0, "x", [[1.0, 2.0]], (1, 2)]))
    nd = ndim if draw(st.integers(0, 5)) < 5 else draw(st.sampled_from([0, 1, 3, 5]))
    shape = tuple(draw(st.integers(1, 6)) if draw(st.integers(0, 19)) < 19 else 0 for _ in range(nd))
    dtype = np.float32 if draw(st.integers(0, 4)) < 4 else draw(st.sampled_from(DTYPES[1:]))
    fill = draw(st.sampled_from([1.0, -2.5, 0.0, np.nan, np.inf]))
    with np.errstate(invalid="ignore"):
        a = np.full(shape, fill).astype(dtype)
    if nd and draw(st.integers(0, 4)) == 4:
        a = a[..., ::-1]  # non-contiguous
    return a


def call(fn, *args, **kwargs):
    try:
        out = fn(*args, **kwargs)
        outcomes["result"] += 1
        return out
    except DOCUMENTED as e:
        outcomes[type(e).__name__] += 1
    except Exception:  # noqa: BLE001 - an undocumented exception is the failure we look for
        print(f"UNDOCUMENTED from {fn.__name__}{args!r:.300} {kwargs!r:.200}")
        traceback.print_exc()
        sys.exit(1)


def main(examples):
    cfg = settings(max_examples=examples, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))

    @cfg
    @given(arrays(), arrays(), st.one_of(st.none(), arrays(1)), sizes, pads, sizes,
           st.one_of(st.just(1), sizes), st.sampled_from(["auto", "direct", "im2col", "fft"]),
           st.booleans())
    def conv(x, w, b, stride, padding, dilation, groups, algorithm, match_channels):
        if match_channels and getattr(x, "ndim", 0) == 4 and getattr(w, "ndim", 0) == 4:
            # a weight whose channel count fits x, so that many calls get to the kernels
            w = np.ones((w.shape[0], x.shape[1], *w.shape[2:]), x.dtype)
        y = call(fastconv.conv2d, x, w, b, stride=stride, padding=padding, dilation=dilation,
                 groups=groups, algorithm=algorithm)
        call(fastconv.conv2d_backward, x if y is None else np.ones_like(y), x, w, stride=stride, padding=padding,
             dilation=dilation, groups=groups, algorithm=algorithm)

    @cfg
    @given(arrays(), arrays(), sizes, sizes, pads, flags, flags, st.one_of(st.none(), arrays()))
    def pool(x, gy, kernel, stride, padding, ceil, flag, indices):
        y = call(fastconv.max_pool2d, x, kernel, stride, padding, ceil, return_indices=flag)
        if isinstance(y, np.ndarray) and isinstance(gy, np.ndarray) and gy.ndim == 4:
            gy = np.ones_like(y)  # a gradient that fits, so the backward kernels run too
        call(fastconv.max_pool2d_backward, gy, x, kernel, stride, padding, ceil, indices=indices)
        call(fastconv.avg_pool2d, x, kernel, stride, padding, ceil, count_include_pad=flag)
        shape = getattr(x, "shape", x)
        call(fastconv.avg_pool2d_backward, gy, shape, kernel, stride, padding, ceil, flag)

    @cfg
    @given(arrays(), arrays(), st.one_of(sizes, st.tuples(st.one_of(st.none(), sizes), sizes)),
           flags, st.one_of(st.none(), arrays()), st.one_of(small, sizes))
    def adaptive(x, gy, output_size, flag, indices, dim):
        y = call(fastconv.adaptive_max_pool2d, x, output_size, return_indices=flag)
        if isinstance(y, np.ndarray) and isinstance(gy, np.ndarray) and gy.ndim == 4:
            gy = np.ones_like(y)  # a gradient that fits, so the backward kernels run too
        call(fastconv.adaptive_max_pool2d_backward, gy, x, output_size, indices=indices)
        call(fastconv.adaptive_avg_pool2d, x, output_size)
        call(fastconv.adaptive_avg_pool2d_backward, gy, getattr(x, "shape", x), output_size)
        y = call(fastconv.maxout, x, dim, return_indices=flag)
        call(fastconv.maxout_backward, np.ones_like(y) if isinstance(y, np.ndarray) else gy, x,
             dim, indices=indices)
        for fwd, bwd in ((fastconv.softmax, fastconv.softmax_backward),
                         (fastconv.log_softmax, fastconv.log_softmax_backward)):
            y = call(fwd, x, dim)
            call(bwd, gy if y is None else np.ones_like(y), x if y is None else y, dim)

    _pads = st.one_of(st.tuples(small, small), st.tuples(small, small, small, small),
                      st.lists(small, max_size=5), _invalid_sizes,
                      st.tuples(st.sampled_from([2**62, -(2**62)]), small))

    @cfg
    @given(arrays(), arrays(), _pads, st.sampled_from(["constant", "reflect", "replicate", "circular",
                                                      "zeros", None]),
           st.sampled_from([0.0, 2.5, np.nan, None, "1"]), pads,
           st.sampled_from(["zeros", "reflect", "replicate", "circular", "wrap"]))
    def padding(x, gy, pad, mode, value, conv_padding, padding_mode):
        y = call(fastconv.pad, x, pad, mode, value)
        if isinstance(y, np.ndarray) and isinstance(gy, np.ndarray) and gy.ndim == 4:
            gy = np.ones_like(y)  # a gradient that fits, so the backward kernel runs too
        call(fastconv.pad_backward, gy, getattr(x, "shape", x), pad, mode)
        w = np.ones((2, x.shape[1], 2, 2), x.dtype) if getattr(x, "ndim", 0) == 4 else gy
        y = call(fastconv.conv2d, x, w, padding=conv_padding, padding_mode=padding_mode)
        call(fastconv.conv2d_backward, gy if y is None else np.ones_like(y), x, w,
             padding=conv_padding, padding_mode=padding_mode)

    conv()
    pool()
    print("outcomes:", dict(outcomes), "calls:", sum(outcomes.values()))
    outcomes.clear()
    adaptive()
    print("adaptive/maxout/softmax outcomes:", dict(outcomes), "calls:", sum(outcomes.values()))
    outcomes.clear()
    padding()
    print("pad outcomes:", dict(outcomes), "calls:", sum(outcomes.values()))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
