"""Benchmark shapes: (N, C_in, H, W, C_out, k, stride, pad)."""
CONV_SHAPES = {
    "lenet_c1": (64, 1, 28, 28, 6, 5, 1, 2),
    "lenet_c3": (64, 6, 14, 14, 16, 5, 1, 0),
    "vgg_3x3": (16, 64, 56, 56, 64, 3, 1, 1),
    "resnet_s2": (16, 128, 28, 28, 256, 3, 2, 1),
}
POOL_SHAPE = (64, 6, 28, 28)
BENCH_THREADS = 2
