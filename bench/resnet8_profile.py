"""Where a ResNet-8 training step's time goes: each leaf module's forward and backward,
summed over 10 steps (batch 128 of 1 x 28 x 28, SGD momentum, float32):

    python bench/resnet8_profile.py [THREADS]
"""
import collections
import sys
import time
from pathlib import Path

import numpy as np

import fastconv
from fastconv.models import resnet8

sys.path.insert(0, str(Path(__file__).resolve().parent))
from steps import fastconv_train_step  # noqa: E402

fastconv.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
rng = np.random.default_rng(0)
x = rng.standard_normal((128, 1, 28, 28)).astype(np.float32)
y = rng.integers(0, 10, 128)
model = resnet8(rng=0)
total = collections.defaultdict(float)


def timed(fn, key):
    def run(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        total[key] += time.perf_counter() - t0
        return out
    return run


for name, m in model.named_modules():
    if name and not list(m.children()):
        label = f"{name}:{type(m).__name__}"
        m.forward, m.backward = timed(m.forward, label + " fwd"), timed(m.backward, label + " bwd")
step = fastconv_train_step(model, x, y)
for _ in range(3):
    step()
total.clear()
R = 10
t0 = time.perf_counter()
for _ in range(R):
    step()
T = (time.perf_counter() - t0) / R * 1e3
for k, v in total.items():
    print(f"{k:40s} {v / R * 1e3:7.2f} ms")
print(f"step {T:.1f} ms; leaf modules {sum(total.values()) / R * 1e3:.1f} ms")
