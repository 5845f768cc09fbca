"""Bad input gets a clear ValueError/TypeError naming the argument (never a crash)."""
import numpy as np
import pytest

import fastconv

x4 = np.zeros((2, 3, 8, 8), np.float32)
w4 = np.zeros((4, 3, 3, 3), np.float32)
gy4 = np.zeros((2, 4, 6, 6), np.float32)

# (callable, exception, words the message must contain)
CONV_CASES = [
    (lambda: fastconv.conv2d([[1.0]], w4), TypeError, "x must be a numpy.ndarray"),
    (lambda: fastconv.conv2d(x4, "w"), TypeError, "weight must be a numpy.ndarray"),
    (lambda: fastconv.conv2d(x4[0], w4), ValueError, "x must be 4-D"),
    (lambda: fastconv.conv2d(x4, w4[0]), ValueError, "weight must be 4-D"),
    (lambda: fastconv.conv2d(x4.astype(int), w4), TypeError, "x must have dtype float32 or float64"),
    (lambda: fastconv.conv2d(x4.astype(np.float16), w4), TypeError, "float16"),
    (lambda: fastconv.conv2d(x4.astype(complex), w4), TypeError, "complex"),
    (lambda: fastconv.conv2d(x4.astype(bool), w4), TypeError, "bool"),
    (lambda: fastconv.conv2d(x4.astype(object), w4), TypeError, "object"),
    (lambda: fastconv.conv2d(x4, w4.astype(np.float64)), TypeError, "share one dtype"),
    (lambda: fastconv.conv2d(x4, w4, np.zeros(4)), TypeError, "bias: float64"),
    (lambda: fastconv.conv2d(x4, w4, np.zeros(5, np.float32)), ValueError, "bias must have shape (4,)"),
    (lambda: fastconv.conv2d(x4, w4, np.zeros((4, 1), np.float32)), ValueError, "bias must be 1-D"),
    (lambda: fastconv.conv2d(x4, np.zeros((4, 2, 3, 3), np.float32)), ValueError, "expects x to have 2 channels"),
    (lambda: fastconv.conv2d(x4, w4, groups=2), ValueError, "divisible by groups"),
    (lambda: fastconv.conv2d(x4, np.zeros((4, 1, 3, 3), np.float32), groups=3), ValueError,
     "out_channels (4) must be divisible by groups (3)"),
    (lambda: fastconv.conv2d(x4, w4, groups=0), ValueError, "groups must be positive"),
    (lambda: fastconv.conv2d(x4, w4, groups=1.0), TypeError, "groups must be an int"),
    (lambda: fastconv.conv2d(x4, w4, stride=0), ValueError, "stride must be positive"),
    (lambda: fastconv.conv2d(x4, w4, stride=(1, -1)), ValueError, "stride must be positive"),
    (lambda: fastconv.conv2d(x4, w4, stride=1.5), TypeError, "stride must be an int or a pair"),
    (lambda: fastconv.conv2d(x4, w4, stride=True), TypeError, "stride must be an int or a pair"),
    (lambda: fastconv.conv2d(x4, w4, stride=(1, 2, 3)), ValueError, "stride must be an int or a pair"),
    (lambda: fastconv.conv2d(x4, w4, dilation=0), ValueError, "dilation must be positive"),
    (lambda: fastconv.conv2d(x4, w4, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: fastconv.conv2d(x4, w4, padding="full"), ValueError, "'valid' or 'same'"),
    (lambda: fastconv.conv2d(x4, w4, padding=None), TypeError, "padding must be an int"),
    (lambda: fastconv.conv2d(x4, w4, stride=2, padding="same"), ValueError, "only supported with stride 1"),
    (lambda: fastconv.conv2d(x4, np.zeros((4, 3, 9, 3), np.float32)), ValueError, "larger than the padded input"),
    (lambda: fastconv.conv2d(x4, w4, dilation=5), ValueError, "larger than the padded input"),
    (lambda: fastconv.conv2d(x4, np.zeros((4, 3, 0, 3), np.float32)), ValueError, "positive kernel size"),
    (lambda: fastconv.conv2d(x4, w4, algorithm="fft"), ValueError, "algorithm must be one of"),
    (lambda: fastconv.conv2d_backward(gy4[:, :3], x4, w4), ValueError, "grad_output must have shape (2, 4, 6, 6)"),
    (lambda: fastconv.conv2d_backward(gy4.astype(np.float64), x4, w4), TypeError, "grad_output: float64"),
    (lambda: fastconv.conv2d_backward(gy4, x4, w4, needs_input_grad="no"), TypeError, "needs_input_grad"),
    (lambda: fastconv.conv2d_backward(None, x4, w4), TypeError, "grad_output must be a numpy.ndarray"),
]

POOL_CASES = [
    (lambda: fastconv.max_pool2d([1.0], 2), TypeError, "x must be a numpy.ndarray"),
    (lambda: fastconv.max_pool2d(x4[0], 2), ValueError, "x must be 4-D"),
    (lambda: fastconv.max_pool2d(x4.astype(np.int8), 2), TypeError, "x must have dtype"),
    (lambda: fastconv.max_pool2d(x4, 0), ValueError, "kernel_size must be positive"),
    (lambda: fastconv.max_pool2d(x4, 2, stride=0), ValueError, "stride must be positive"),
    (lambda: fastconv.max_pool2d(x4, 2, padding=2), ValueError, "at most half of kernel_size"),
    (lambda: fastconv.max_pool2d(x4, 2, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: fastconv.max_pool2d(x4, 9), ValueError, "larger than the padded input"),
    (lambda: fastconv.max_pool2d(x4, 2, ceil_mode="yes"), TypeError, "ceil_mode must be a bool"),
    (lambda: fastconv.max_pool2d(x4, 2, return_indices=1), TypeError, "return_indices must be a bool"),
    (lambda: fastconv.max_pool2d(x4, 2.0), TypeError, "kernel_size must be an int or a pair"),
    (lambda: fastconv.max_pool2d_backward(np.zeros((2, 3, 3, 3), np.float32), x4, 2), ValueError,
     "grad_output must have shape (2, 3, 4, 4)"),
    (lambda: fastconv.max_pool2d_backward(np.zeros((2, 3, 4, 4)), x4, 2), TypeError, "share one dtype"),
    (lambda: fastconv.max_pool2d_backward(np.zeros((2, 3, 4, 4), np.float32), x4, 2,
                                          indices=np.full((2, 3, 4, 4), 64)), ValueError, "indices must be flat"),
    (lambda: fastconv.max_pool2d_backward(np.zeros((2, 3, 4, 4), np.float32), x4, 2,
                                          indices=np.zeros((2, 3, 4, 4), np.float32)), TypeError, "integer dtype"),
    (lambda: fastconv.max_pool2d_backward(np.zeros((2, 3, 4, 4), np.float32), x4, 2,
                                          indices=np.zeros((2, 3, 4), np.int64)), ValueError, "indices must have shape"),
    (lambda: fastconv.avg_pool2d(x4, 2, count_include_pad=None), TypeError, "count_include_pad must be a bool"),
    (lambda: fastconv.avg_pool2d(x4, (2, 2, 2)), ValueError, "kernel_size must be an int or a pair"),
    (lambda: fastconv.avg_pool2d_backward(np.zeros((2, 3, 4, 4), np.float32), (2, 3, 8), 2), ValueError,
     "input_shape must be a tuple of 4 ints"),
    (lambda: fastconv.avg_pool2d_backward(np.zeros((2, 3, 4, 5), np.float32), (2, 3, 8, 8), 2), ValueError,
     "grad_output must have shape"),
    (lambda: fastconv.im2col(x4, 0), ValueError, "kernel_size must be positive"),
    (lambda: fastconv.col2im(np.zeros((2, 27, 35)), (2, 3, 8, 8), 3), ValueError, "col must have shape (2, 27, 36)"),
]


@pytest.mark.parametrize("call,exc,words", CONV_CASES + POOL_CASES,
                         ids=[str(i) for i in range(len(CONV_CASES + POOL_CASES))])
def test_bad_input_raises_clear_error(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def test_absurd_output_size_is_refused_before_allocating():
    # a 1x1 input padded by a million: the output would be 4 * 4 * (2e6+1)**2 bytes = 64 TB
    x = np.zeros((1, 1, 1, 1), np.float32)
    w = np.zeros((4, 1, 1, 1), np.float32)
    with pytest.raises(MemoryError, match="conv2d output would need"):
        fastconv.conv2d(x, w, padding=10**6)


def test_set_num_threads_validation():
    with pytest.raises(ValueError, match="positive"):
        fastconv.set_num_threads(0)
    with pytest.raises(TypeError, match="positive int"):
        fastconv.set_num_threads(1.5)
    with pytest.raises(TypeError):
        fastconv.set_num_threads(True)


def test_string_options_share_one_check_and_one_message():
    """Every string option goes through _validation.check_choice: a table maps, a tuple
    admits; unknown, unhashable and wrongly typed values get one message listing the
    choices in the table's order."""
    from fastconv._validation import check_choice

    table = {"zeros": None, "reflect": "reflect"}
    assert check_choice("reflect", "padding_mode", table) == "reflect"
    assert check_choice("zeros", "padding_mode", table) is None
    assert check_choice("b", "mode", ("a", "b")) == "b"
    got = check_choice(np.str_("b"), "mode", ("a", "b"))
    assert got == "b" and type(got) is str  # the table's own entry, not the caller's object
    for bad in (np.array("b"), np.array(["b"]), np.array(["a", "b"])):  # no elementwise ==
        with pytest.raises(ValueError, match="mode must be one of 'a', 'b', got array"):
            check_choice(bad, "mode", ("a", "b"))
    with pytest.raises(ValueError, match="mode must be one of 'fan_in', 'fan_out', got 'FAN_AVG'"):
        fastconv.nn.init.kaiming_uniform_(np.zeros((2, 2)), mode="FAN_AVG")  # the value as given
    for bad in ("Reflect", ["reflect"], None, 1):
        with pytest.raises(ValueError) as info:
            check_choice(bad, "padding_mode", table)
        assert str(info.value) == f"padding_mode must be one of 'zeros', 'reflect', got {bad!r}"
    # the same message from layers, functional calls and the CLI's helpers alike
    for call, start in [(lambda: fastconv.nn.Conv2d(1, 1, 3, padding_mode="mirror"), "padding_mode"),
                        (lambda: fastconv.pad(np.zeros((1, 1, 4, 4)), (1, 1), mode="edge"), "mode"),
                        (lambda: fastconv.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)),
                                                 algorithm="fft"), "algorithm")]:
        with pytest.raises(ValueError, match=f"^{start} must be one of '[^;]*', got '"):
            call()
