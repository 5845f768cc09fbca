"""Smoke test of an INSTALLED fastconv (a wheel in a fresh environment): run it from a
directory outside the source tree, e.g. ``cd /tmp && python /path/to/.ci/smoke.py``.

Checks: the package imports from site-packages (not a source checkout), ships py.typed and
the kernel stubs, ``python -m fastconv info`` runs, OpenMP is on (set
FASTCONV_SMOKE_ALLOW_SERIAL=1 where a serial build is expected), conv2d equals a NumPy loop,
a LeNet-5 forward/backward gives finite numbers of the right shapes, and, when the package
has them, fastconv.save / fastconv.load round-trip a model bit for bit.
"""
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

import fastconv
from fastconv import nn

pkg = pathlib.Path(fastconv.__file__).resolve().parent
for parent in pkg.parents:
    if (parent / "setup.py").exists() or (parent / ".git").exists():
        sys.exit(f"smoke: fastconv was imported from a source tree ({pkg}), not an installed wheel")
if not (pkg / "py.typed").is_file():
    sys.exit(f"smoke: {pkg} has no py.typed")
kernels = sorted(p.name.split(".")[0] for p in (pkg / "_kernels").iterdir() if p.suffix in (".so", ".pyd"))
stubs = sorted(p.stem for p in (pkg / "_kernels").glob("*.pyi"))
if not kernels or kernels != stubs:
    sys.exit(f"smoke: compiled kernels {kernels} and stubs {stubs} differ")
print(f"smoke: fastconv {fastconv.__version__} from {pkg}: {len(kernels)} kernels, py.typed")

subprocess.run([sys.executable, "-m", "fastconv", "info"], check=True)
if not fastconv.openmp_enabled() and os.environ.get("FASTCONV_SMOKE_ALLOW_SERIAL") != "1":
    sys.exit("smoke: the installed fastconv was built WITHOUT OpenMP (serial fallback)")

# conv2d against a direct NumPy loop (stride 2, padding 1, two groups, bias).
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 4, 9, 8))
w = rng.standard_normal((6, 2, 3, 3))
b = rng.standard_normal(6)
y = fastconv.conv2d(x, w, b, stride=2, padding=1, groups=2)
xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
ref = np.empty((2, 6, 5, 4))
for n in range(2):
    for o in range(6):
        gi = o // 3
        for i in range(5):
            for j in range(4):
                patch = xp[n, 2 * gi:2 * gi + 2, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
                ref[n, o, i, j] = np.sum(patch * w[o]) + b[o]
err = np.max(np.abs(y - ref))
if y.shape != ref.shape or err > 1e-10:
    sys.exit(f"smoke: conv2d differs from the NumPy loop (shape {y.shape}, max error {err:.3g})")
print(f"smoke: conv2d equals the NumPy loop (max error {err:.1e})")

# A tiny LeNet-5 training step.
model = fastconv.models.lenet5(rng=0)
images = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
labels = np.array([0, 1, 2, 3])
loss_fn = nn.CrossEntropyLoss()
logits = model(images)
loss = loss_fn(logits, labels)
model.zero_grad()
model.backward(loss_fn.backward())
grads = [p.grad for p in model.parameters()]
if logits.shape != (4, 10) or not np.isfinite(loss) or not all(np.isfinite(g).all() for g in grads):
    sys.exit("smoke: LeNet-5 forward/backward gave a wrong shape or non-finite values")
if not any(np.abs(g).sum() > 0 for g in grads):
    sys.exit("smoke: LeNet-5 backward left every gradient zero")
print(f"smoke: LeNet-5 forward/backward, loss {float(loss):.4f}")

if hasattr(fastconv, "save") and hasattr(fastconv, "load"):
    with tempfile.TemporaryDirectory() as tmp:
        for ext in (".npz", ".safetensors"):
            path = os.path.join(tmp, "lenet" + ext)
            fastconv.save(model, path)
            loaded = fastconv.load(path)
            state, back = model.state_dict(), loaded.state_dict()
            if list(state) != list(back) or not all(np.array_equal(state[k], back[k]) for k in state):
                sys.exit(f"smoke: fastconv.save/load ({ext}) did not round-trip the state dict")
            if not np.array_equal(loaded.eval()(images), model.eval()(images)):
                sys.exit(f"smoke: the model loaded from {ext} computes different logits")
    print("smoke: fastconv.save/load round trip (.npz, .safetensors)")
print("smoke: OK")
