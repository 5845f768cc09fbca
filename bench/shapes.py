"""Benchmark shapes and the helpers every bench shares."""
import os

# (N, C_in, H, W, C_out, k, stride, pad)
CONV_SHAPES = {
    "lenet_c1": (64, 1, 28, 28, 6, 5, 1, 2),
    "lenet_c3": (64, 6, 14, 14, 16, 5, 1, 0),
    "vgg_3x3": (16, 64, 56, 56, 64, 3, 1, 1),
    "resnet_s2": (16, 128, 28, 28, 256, 3, 2, 1),
}
LENET_SHAPES = ["lenet_c1", "lenet_c3"]
POOL_SHAPE = (64, 6, 28, 28)
BENCH_THREADS = 2
# Thread counts for the scaling runs: 1, 2 and, where the machine has them, all cores.
SCALING_THREADS = sorted({1, 2, os.cpu_count() or 2})


def conv_output_hw(name):
    N, C, H, W, C_out, k, s, p = CONV_SHAPES[name]
    return (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1


def conv_flops(name, backward=False):
    """Multiply-adds x 2 of the forward pass; forward + both gradients is three times that."""
    N, C, H, W, C_out, k, s, p = CONV_SHAPES[name]
    OH, OW = conv_output_hw(name)
    fwd = 2 * N * C_out * OH * OW * C * k * k
    return 3 * fwd if backward else fwd


def gemm_dims(name):
    """(M, N, K) of the GEMM with the convolution's FLOPs: C_out x (N*OH*OW) x (C_in*k*k)."""
    N, C, H, W, C_out, k, s, p = CONV_SHAPES[name]
    OH, OW = conv_output_hw(name)
    return C_out, N * OH * OW, C * k * k
