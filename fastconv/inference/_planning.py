"""Plans: the lowered ops as the Cython executor's step table, and the measured choices.

:class:`_Plan` allocates every buffer once and fills one table row per step
(``fastconv._kernels._plan``); :class:`_ChunkedPlan` runs a batch as chunks of images, each
through the whole network on one thread; :func:`_choose_plan` times the candidates.
"""
import contextlib
import math
import time
from typing import Any

import numpy as np

from .. import functional as F
from .._kernels import _direct, _im2col, _plan
from .._parallel import blas_single_thread
from ._lowering import _Builder, _Value

_COLS = {**_plan.COMMON}
_KIND = _plan.KINDS
_FIELD_GROUP = {"conv": "conv", "linear": "linear", "maxpool": "pool", "avgpool": "pool",
                "adaptive_avg": "pool", "adaptive_max": "pool", "relu": "elementwise",
                "add": "elementwise", "affine": "affine", "copy": "copy", "py": "py",
                "winograd": "winograd"}
_FIELD_COLS = {group: {name: _plan.ARG0 + i for i, name in enumerate(names)}
               for group, names in _plan.FIELDS.items()}


#: What computes a Winograd step's 16 products, by its "axpy" column.
_WINOGRAD_PRODUCTS = {0: "(BLAS products)", 1: "(AVX-512 products)", 2: "(AVX2 products)"}


def _winograd_blocks():
    """Which vector blocks can do a float32 Winograd step's 16 products here: 1 the AVX-512
    ones, 2 the AVX2 ones, 0 none (BLAS)."""
    return 1 if _direct.use_avx512() else 2 if _direct.use_avx2() else 0


# -- from ops to the executor's tables -----------------------------------------------------
class _Plan:
    """The executable plan for one input shape and thread count."""

    def __init__(self, snapshot, shape, dtype, n_threads, measure=True, chunked=False,
                 force_algorithm=None):
        self.shape = shape
        self.dtype = dtype
        self.n_threads = n_threads
        # chunked: one set of buffers per thread, every step serial (run_chunked)
        self.chunked = chunked
        self.replicas = max(1, n_threads) if chunked else 1
        builder = _Builder(dtype)
        self.input_value = _Value(shape)
        out = builder.lower(snapshot, self.input_value, "")
        if out.root is self.input_value:  # the network only reshapes: copy, never alias x
            out = builder.emit("py", [out], out.shape, "copy",
                               fn=lambda xa, o: np.copyto(o, xa))
        self.ops = builder.ops
        self.holder: list = [None]  # the current input, for Python steps
        self.blas = False
        for op in self.ops:
            if op.kind == "conv":
                # force_algorithm (tests): every convolution that has it uses it
                # ("winograd_axpy": Winograd with its products by the AVX-512 or AVX2 blocks)
                forced = "winograd" if force_algorithm == "winograd_axpy" else force_algorithm
                op.algorithm = ("direct" if forced not in self._conv_alternatives(op) else forced)
                # (only where the AVX-512 blocks exist: a portable build or another CPU has
                # empty stand-ins, so it falls back to BLAS's products, as measuring does)
                op.winograd_axpy = (_winograd_blocks() if force_algorithm == "winograd_axpy"
                                    and dtype == np.float32 else 0)
        self._allocate(out)
        self._tables()
        self.executor = _plan.Executor(self.steps, self.slots, self.py_steps)
        if measure:
            if self._choose_algorithms():
                self._tables()
                self.executor = _plan.Executor(self.steps, self.slots, self.py_steps)
            if not chunked:
                self._choose_threads()

    def _choose_algorithms(self):
        """For each convolution with another algorithm (Winograd for 3x3 stride 1, a kernel
        step with the same epilogue; im2col for 1x1, a Python step plus an epilogue step),
        time it against the direct step and keep the faster (im2col must win by 10 %: it
        also pays a separate epilogue pass; chunked plans consider Winograd only). Returns
        whether the tables must be rebuilt."""
        x = np.random.default_rng(0).standard_normal(self.shape).astype(self.dtype)
        self.run(x)
        self.holder[0] = x
        rebuild = False
        blas = self.blas  # (the trial rows below set it whatever is kept)
        with blas_single_thread():
            for i, op in enumerate(self.step_ops):
                alternatives = self._conv_alternatives(op) if op.kind == "conv" else ()
                if self.chunked:
                    alternatives = tuple(a for a in alternatives if a == "winograd")
                if not alternatives:
                    continue
                pick = 0 if self.chunked else -1  # chunked plans: serial steps
                direct_row = self.steps[i].copy()
                nt = int(direct_row[_COLS["threads"]])
                cpu = self.n_threads <= 1
                first = self.executor.time_step(i, nt, 1, cpu)
                reps = int(min(15, max(3, 2e6 // max(first, 1.0))))
                times: dict = {"direct": []}
                if alternatives == ("winograd",):
                    # Winograd with its 16 products by BLAS (0), and at float32 by the
                    # blocks of _gemm_avx512.h (1) or _gemm_avx2.h (2) (no per-call
                    # overhead; wasteful when a product has few tiles)
                    variants = [0] + [b for b in [_winograd_blocks()] if b and self.dtype == np.float32]
                    rows_w = {}
                    op.algorithm = "winograd"
                    for axpy in variants:
                        op.winograd_axpy = axpy
                        wrow = direct_row.copy()
                        wconfigs = self._table_winograd(op, wrow)
                        wt, wtasks, _ = wconfigs[pick]
                        wrow[_COLS["threads"]], wrow[_COLS["tasks"]] = wt, wtasks
                        rows_w[axpy] = (wrow, wconfigs, wt)
                        times[axpy] = []
                    op.algorithm = "direct"
                    for _ in range(3):
                        self.steps[i] = direct_row
                        times["direct"].append(self.executor.time_step(i, nt, reps, cpu))
                        for axpy, (wrow, _, wt) in rows_w.items():
                            self.steps[i] = wrow
                            times[axpy].append(self.executor.time_step(i, wt, reps, cpu))
                    self.steps[i] = direct_row
                    med = {k: (min(v) if cpu else sorted(v)[1]) for k, v in times.items()}
                    best = min(med, key=lambda k: med[k])
                    if best != "direct":
                        op.algorithm = "winograd"
                        op.winograd_axpy = best
                        self.steps[i] = rows_w[best][0]
                        self.configs[i] = rows_w[best][1]
                    continue
                fn = self._conv_alternative_fn(op, "im2col")
                times["im2col"] = []
                clock = _clock(self.n_threads)
                for _ in range(3):
                    times["direct"].append(self.executor.time_step(i, nt, reps, cpu))
                    fn()
                    ts = []
                    for _ in range(reps):
                        t0 = clock()
                        fn()
                        ts.append(clock() - t0)
                    times["im2col"].append(min(ts) if cpu else sorted(ts)[len(ts) // 2])
                stat = min if cpu else (lambda v: sorted(v)[1])
                if stat(times["im2col"]) < 0.9 * stat(times["direct"]):
                    op.algorithm = "im2col"
                    rebuild = True
        self.holder[0] = None
        # the steps kept: the table's, and a Winograd step with its products by BLAS
        self.blas = blas or any(op.kind == "conv" and op.algorithm == "winograd"
                                and not op.winograd_axpy for op in self.step_ops)
        return rebuild

    # buffers: one per value that owns one; slot 0 is the input
    def _allocate(self, out):
        self.arrays = {}  # root value -> ndarray (replica 0's)
        self.replica_arrays = []  # the other replicas' buffers, kept alive
        self.slot_of = {self.input_value: 0}
        for op in self.ops:
            self.slot_of[op.output] = len(self.slot_of)
        self.slots = np.zeros((self.replicas, len(self.slot_of)), np.intp)
        for r in range(self.replicas):
            for op in self.ops:
                a = np.zeros(op.output.shape, self.dtype)
                if r == 0:
                    self.arrays[op.output] = a
                else:
                    self.replica_arrays.append(a)
                self.slots[r, self.slot_of[op.output]] = a.ctypes.data
        self.output = self.arrays[out.root].reshape(out.shape)
        self.output_slot = self.slot_of[out.root]

    def _array(self, v):
        """A function returning value v's array (the input's changes every call)."""
        root = v.root
        if root is self.input_value:
            holder, shape = self.holder, v.shape
            return lambda: holder[0].reshape(shape)
        a = self.arrays[root].reshape(v.shape)
        return lambda: a

    def _tables(self):
        # (whether run() must pin BLAS to one thread: set by the steps that call it; the
        # pin costs ~15 us a call, a fifth of a batch-1 LeNet-5)
        self.blas = False
        self.keep = []
        rows: list = []
        self.py_steps: list = []
        self.configs: list = []
        self.step_ops: list = []
        for op in self.ops:
            for part in range(len(op.inputs) if op.kind == "copy" else 1):
                row: Any = np.zeros(_plan.N_COLS, np.intp)
                row[_COLS["kind"]] = _KIND[op.kind]
                row[_COLS["double"]] = self.dtype == np.float64
                row[_COLS["input"]] = self.slot_of[op.inputs[part].root]
                row[_COLS["output"]] = self.slot_of[op.output]
                row[_COLS["residual"]] = (-1 if op.residual is None
                                          else self.slot_of[op.residual.root])
                row[_COLS["relu"]] = op.relu
                if op.kind == "copy":
                    configs = self._table_copy(op, row, part)
                elif op.kind == "conv" and op.algorithm == "im2col":
                    self._table_conv_alternative(op, row, rows)
                    continue
                else:
                    configs = getattr(self, "_table_" + op.kind)(op, row)
                rows.append(row)
                self.configs.append(configs)
                self.step_ops.append(op)
        self.steps = np.array(rows, np.intp).reshape(len(rows), _plan.N_COLS)
        for i, configs in enumerate(self.configs):
            # the parallel configuration until measured; chunked plans run steps serially
            self._apply(i, configs[0] if self.chunked else configs[-1])

    def _set(self, row, group, **fields):
        cols = _FIELD_COLS[group]
        for k, v in fields.items():
            row[cols[k]] = v

    def _apply(self, i, config):
        threads, tasks, fields = config
        row = self.steps[i]
        row[_COLS["threads"]] = threads
        row[_COLS["tasks"]] = tasks
        self._set(row, _FIELD_GROUP[self._kind_name(row)], **fields)

    @staticmethod
    def _kind_name(row):
        k = int(row[_COLS["kind"]])
        return next(name for name, v in _KIND.items() if v == k)

    def _serial_parallel(self, serial, parallel):
        """The configurations to try: (threads, tasks, fields), serial first."""
        if self.n_threads <= 1:
            return [serial]
        return [serial, parallel]

    def _buffer(self, a):
        self.keep.append(a)
        return a.ctypes.data

    # -- per kind
    def _table_winograd(self, op, row):
        """conv ``op`` by Winograd F(2x2, 3x3) (3x3, stride 1, one group) as a kernel step:
        the transforms of _winograd.h, 16 GEMMs per chunk of images, the epilogue fused."""
        g, dt = op.geometry, self.dtype
        row[_COLS["kind"]] = _KIND["winograd"]
        axpy = int(getattr(op, "winograd_axpy", 0))
        if not axpy:  # its products by BLAS
            self.blas = True
        u = np.ascontiguousarray(F.conv._winograd_weight(np.ascontiguousarray(op.weight.astype(dt))))
        bias = np.ascontiguousarray(op.bias.astype(dt))
        tiles = ((g.OH + 1) // 2) * ((g.OW + 1) // 2)
        chunk = max(1, min(g.N, round(F.conv.WINOGRAD_CHUNK_TILES / tiles)))
        slen = _direct.winograd_scratch_len(g.C_in, g.C_out, g.OH, g.OW, chunk)
        scratch = np.zeros((max(1, self.n_threads), slen), dt)  # its padded part's border: zeros
        self._set(row, "winograd", u=self._buffer(u), b=self._buffer(bias),
                  scratch=self._buffer(scratch), slen=slen, n=g.N, c=g.C_in, h=g.H, w=g.W,
                  cout=g.C_out, oh=g.OH, ow=g.OW, pt=g.pad_top, pl=g.pad_left, chunk=chunk,
                  avx=(1 if _direct.use_avx512() else 2 if _direct.use_avx2() else 0)
                  if dt == np.float32 else 0,
                  axpy=axpy)
        n_chunks = -(-g.N // chunk)
        return self._serial_parallel((1, n_chunks, {}), (self.n_threads, n_chunks, {}))

    def _table_conv(self, op, row):
        if op.algorithm == "winograd":
            return self._table_winograd(op, row)
        g, dt = op.geometry, self.dtype
        is_double = dt == np.float64
        cig, cog = g.C_in // g.groups, g.C_out // g.groups
        tile, cb, owb = _direct.forward_tile(is_double, cog, g.OW, g.kw, g.sw, g.dw)
        if getattr(op, "pooled", False) and tile != _direct.PIXEL_TILE:
            # pooling fused on a CPU with AVX2 only: the AVX2 pixel tile (_lowering)
            tile, cb, owb = _direct.AVX2_PIXEL_TILE, 8, 8
        hp = (g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1
        wp = (-(-g.OW // owb) * owb - 1) * g.sw + (g.kw - 1) * g.dw + 1
        w5 = np.ascontiguousarray(op.weight.astype(dt)).reshape(g.groups, cog, cig, g.kh, g.kw)
        packed = np.empty((g.groups, -(-cog // cb) * cig * g.kh * g.kw * cb), dt)
        _direct.pack_weight_blocked(w5, packed, cb, 1)
        bias = np.ascontiguousarray(op.bias.astype(dt))
        xpad = np.zeros((max(1, self.n_threads), cig * hp * wp), dt)  # zero borders, written once
        op.tile = (tile, cb, owb)
        self._set(row, "conv", w=self._buffer(packed), b=self._buffer(bias),
                  xpad=self._buffer(xpad), xpad_len=xpad.shape[1], n=g.N, cin=g.C_in, h=g.H,
                  w_in=g.W, cout=g.C_out, groups=g.groups, tile=tile, cb=cb, hp=hp, wp=wp,
                  kh=g.kh, kw=g.kw, sh=g.sh, sw=g.sw, pt=g.pad_top, pl=g.pad_left, dh=g.dh,
                  dw=g.dw, oh=g.OH, ow=g.OW, wgl=packed.shape[1],
                  direct=g.pad_top == 0 and g.pad_left == 0 and hp <= g.H and wp <= g.W,
                  pool=getattr(op, "pooled", False))
        images = g.N * g.groups
        serial = (1, images, dict(rows=g.OH, chunks=1))
        if images >= self.n_threads or g.OH < 2:
            parallel = (self.n_threads, images, dict(rows=g.OH, chunks=1))
        else:  # fewer (image, group) pairs than threads: split the output rows too
            chunks = min(g.OH, -(-self.n_threads // images))
            rows = -(-g.OH // chunks)
            rows += rows % 2  # the two-row tiles
            chunks = -(-g.OH // rows)
            parallel = (self.n_threads, images * chunks, dict(rows=rows, chunks=chunks))
        return self._serial_parallel(serial, parallel)

    def _conv_alternative_fn(self, op, algorithm):
        """A function running conv ``op`` by im2col + GEMM (``_im2col``'s kernel) on
        preallocated arrays (bias included, no epilogue)."""
        g, dt = op.geometry, self.dtype
        n_threads = max(1, self.n_threads)
        w = np.ascontiguousarray(op.weight.astype(dt))
        bias = np.ascontiguousarray(op.bias.astype(dt))
        get_in, get_out = self._array(op.inputs[0]), self._array(op.output)
        rows = F._im2col_rows_per_chunk(g, dt.itemsize, n_threads, parallel_rows=True)
        nt = max(1, min(n_threads, g.N * -(-g.OH // rows)))
        scratch = np.empty((nt, g.C_in * g.kh * g.kw * rows * g.OW), dt)
        args = g.kernel_args + (g.groups, nt)
        return lambda: _im2col.conv2d_im2col_forward(get_in(), w, bias, get_out(), scratch, rows,
                                                     *args)

    @staticmethod
    def _conv_alternatives(op):
        g = op.geometry
        if getattr(op, "pooled", False):  # the pixel tile with pooling fused, only
            return ()
        if F.conv.winograd_fits(g):
            return ("winograd",)
        if g.kh == g.kw == 1 and g.groups == 1 and F.conv._im2col_fits_blas(g):
            return ("im2col",)
        return ()

    def _table_conv_alternative(self, op, row, rows):
        """conv ``op`` as a Python step (its algorithm through fastconv.functional's
        kernels), then its epilogue (residual add, ReLU) as a step of its own."""
        self.blas = True
        fn = self._conv_alternative_fn(op, op.algorithm)
        py = row.copy()
        py[_COLS["kind"]] = _KIND["py"]
        self._set(py, "py", index=len(self.py_steps))
        self.py_steps.append(fn)
        rows.append(py)
        self.configs.append([(1, 1, {})])
        self.step_ops.append(op)
        if op.residual is None and not op.relu:
            return
        epi = row.copy()
        out = self.slot_of[op.output]
        epi[_COLS["input"]] = out
        epi[_COLS["kind"]] = _KIND["relu" if op.residual is None else "add"]
        rows.append(epi)
        self.configs.append(self._elementwise(math.prod(op.output.shape)))
        self.step_ops.append(_EpilogueLabel(op))

    def _table_linear(self, op, row):
        dt = self.dtype
        n, m = op.output.shape
        k = op.inputs[0].shape[1]
        w = np.ascontiguousarray(op.weight.astype(dt))
        bias = np.ascontiguousarray(op.bias.astype(dt))
        # 1: the AVX-512 kernels; 2: the AVX2 ones (float32; BLAS otherwise)
        avx = (1 if _direct.use_avx512() else 2 if _direct.use_avx2() else 0
               ) if dt == np.float32 else 0
        self._set(row, "linear", w=self._buffer(w), b=self._buffer(bias), n=n, k=k, m=m, avx=avx)
        if avx:
            rows, cols = _plan.linear_blocks(n, m, avx)
            tasks = -(-n // rows) * -(-m // cols)
            return self._serial_parallel((1, tasks, dict(rows=n)), (self.n_threads, tasks, dict(rows=n)))
        self.blas = True
        rows = -(-n // max(1, self.n_threads))
        return self._serial_parallel((1, 1, dict(rows=n)),
                                     (self.n_threads, -(-n // rows), dict(rows=rows)))

    def _pool_fields(self, op, row, idx_len):
        g = op.geometry
        kargs = getattr(g, "kernel_args", (0,) * 6)
        idx = np.empty(max(1, idx_len), np.int64)
        self._set(row, "pool", idx=self._buffer(idx), nc=g.N * g.C, h=g.H, w=g.W, oh=g.OH,
                  ow=g.OW, kh=kargs[0], kw=kargs[1], sh=kargs[2], sw=kargs[3], ph=kargs[4],
                  pw=kargs[5], cip=getattr(op, "count_include_pad", True))
        return g.N * g.C

    def _table_maxpool(self, op, row):
        g = op.geometry
        nc = self._pool_fields(op, row, max(1, self.n_threads) * g.OH * g.OW)
        # the "cip" column of max pooling: the 2x2 / stride 2 AVX-512 kernel without indices
        # (1: AVX-512, 2: AVX2)
        isa = 1 if _direct.use_avx512() else 2 if _direct.use_avx2() else 0
        fast = (self.dtype == np.float32 and isa and g.kernel_args == (2, 2, 2, 2, 0, 0)
                and 2 * g.OH <= g.H and 2 * g.OW <= g.W)
        self._set(row, "pool", cip=isa if fast else 0)
        return self._serial_parallel((1, nc, {}), (self.n_threads, nc, {}))

    def _table_avgpool(self, op, row):
        nc = self._pool_fields(op, row, 1)
        return self._serial_parallel((1, nc, {}), (self.n_threads, nc, {}))

    def _table_adaptive_avg(self, op, row):
        g = op.geometry
        nc = self._pool_fields(op, row, max(1, self.n_threads) * g.N * g.C * g.OH * g.OW)
        per = max(1, -(-nc // (4 * max(1, self.n_threads))))
        return self._serial_parallel((1, 1, dict(per=max(1, nc))),
                                     (self.n_threads, -(-nc // per), dict(per=per)))

    _table_adaptive_max = _table_adaptive_avg

    def _elementwise(self, size):
        per = max(16, -(-size // (4 * max(1, self.n_threads))))
        per = -(-per // 16) * 16
        return self._serial_parallel((1, 1, dict(size=size, per=max(1, size))),
                                     (self.n_threads, -(-size // per), dict(size=size, per=per)))

    def _table_relu(self, op, row):
        return self._elementwise(math.prod(op.output.shape))

    def _table_add(self, op, row):
        row[_COLS["residual"]] = self.slot_of[op.inputs[1].root]
        return self._elementwise(math.prod(op.output.shape))

    def _table_affine(self, op, row):
        dt = self.dtype
        s = np.ascontiguousarray(op.scale.astype(dt))
        t = np.ascontiguousarray(op.shift.astype(dt))
        n, c = op.output.shape[:2]
        self._set(row, "affine", s=self._buffer(s), t=self._buffer(t), n=n, c=c, plane=op.plane)
        return self._serial_parallel((1, n * c, {}), (self.n_threads, n * c, {}))

    def _table_copy(self, op, row, part):
        """Branch ``part`` of a concatenation: its runs into their place in the output."""
        axis, src = op.axis, op.inputs[part].shape
        inner = math.prod(op.output.shape[axis + 1:])
        offset = sum(v.shape[axis] for v in op.inputs[:part]) * inner
        outer = math.prod(src[:axis])
        fields = dict(outer=outer, src=math.prod(src[axis:]), dst=math.prod(op.output.shape[axis:]),
                      off=offset)
        per = -(-outer // max(1, self.n_threads))
        return self._serial_parallel((1, 1, dict(fields, per=max(1, outer))),
                                     (self.n_threads, -(-outer // per), dict(fields, per=per)))

    def _table_py(self, op, row):
        fn, get_out = op.fn, self._array(op.output)
        gets = [self._array(v) for v in op.inputs]
        self._set(row, "py", index=len(self.py_steps))
        if len(gets) == 1:
            get_in = gets[0]
            self.py_steps.append(lambda: fn(get_in(), get_out()))
        else:
            self.py_steps.append(lambda: fn(*[g() for g in gets], get_out()))
        return [(1, 1, {})]

    # -- thread counts, measured
    def _choose_threads(self):
        x = np.random.default_rng(0).standard_normal(self.shape).astype(self.dtype)
        self.run(x)
        self.holder[0] = x
        budget = 2e6  # ns of timing per configuration and step
        for i, configs in enumerate(self.configs):
            if len(configs) < 2:
                continue
            self._apply(i, configs[0])
            first = self.executor.time_step(i, configs[0][0], 1)
            reps = int(min(15, max(3, budget // max(first, 1.0))))
            best, best_time = None, None
            times: dict = {}
            for _ in range(3):  # interleaved rounds: load changes affect both alike
                for j, config in enumerate(configs):
                    self._apply(i, config)
                    with blas_single_thread() if self.blas else contextlib.nullcontext():
                        times.setdefault(j, []).append(self.executor.time_step(i, config[0], reps))
            # several threads only when clearly faster (their cost on a busy machine has a
            # long tail: a preempted thread holds the step's barrier)
            serial = sorted(times[0])[1]
            parallel = sorted(times[1])[2]
            best, best_time = (1, sorted(times[1])[1]) if parallel < 0.8 * serial else (0, serial)
            self._apply(i, configs[best])
            self.step_ops[i].time_ns = best_time
        self.holder[0] = None

    @property
    def ops_output(self):
        return self.output

    def run(self, x):
        self.holder[0] = x
        if self.blas:
            with blas_single_thread():
                self.executor.run(x)
        else:
            self.executor.run(x)
        self.holder[0] = None
        return self.output

    def describe(self):
        lines = []
        for i, op in enumerate(self.step_ops):
            threads = int(self.steps[i, _COLS["threads"]])
            extra = []
            if op.relu:
                extra.append("+relu")
            if op.kind == "conv":
                extra.append(f"tile {op.tile[0]}" if op.algorithm == "direct" else op.algorithm)
                if op.algorithm == "winograd":
                    extra.append(_WINOGRAD_PRODUCTS[int(getattr(op, "winograd_axpy", 0))])
            if op.kind == "conv" and op.residual is not None and op.algorithm == "im2col":
                pass
            t = getattr(op, "time_ns", None)
            timing = f", {t / 1000:.1f} us" if t is not None else ""
            lines.append(f"  {i}: {op.label} {' '.join(extra)} -> {op.output.shape} "
                         f"[{threads} thread{'s' if threads != 1 else ''}{timing}]")
        return "\n".join(lines)


class _ChunkedPlan:
    """A batch run as chunks of ``chunk`` images, each through the whole network on one
    thread (one parallel region per call: no barrier between layers, and each chunk's
    activations stay in that core's cache)."""

    def __init__(self, snapshot, shape, dtype, n_threads, chunk, measure=True,
                 force_algorithm=None):
        self.shape, self.chunk, self.n_threads = shape, chunk, n_threads
        self.sub = _Plan(snapshot, (chunk,) + shape[1:], dtype, n_threads, measure=measure,
                         chunked=True, force_algorithm=force_algorithm)
        self.n_chunks = shape[0] // chunk
        self.output = np.zeros((shape[0],) + self.sub.output.shape[1:], dtype)
        self.in_bytes = math.prod((chunk,) + shape[1:]) * dtype.itemsize
        self.out_bytes = self.sub.output.nbytes

    @staticmethod
    def fits(plan):
        """Whether ``plan``'s network can run chunked (no Python steps)."""
        return not any(op.kind == "py" for op in plan.ops)

    def run(self, x):
        sub = self.sub
        args = (x, self.output, self.n_chunks, self.in_bytes, self.out_bytes, sub.output_slot,
                self.n_threads)
        if sub.blas:
            with blas_single_thread():
                sub.executor.run_chunked(*args)
        else:
            sub.executor.run_chunked(*args)
        return self.output

    def describe(self):
        return (f"  {self.n_chunks} chunks of {self.chunk} image{'s' if self.chunk > 1 else ''}, "
                f"each through every step on one of {self.n_threads} thread"
                f"{'s' if self.n_threads > 1 else ''}:\n" + self.sub.describe())


def _clock(n_threads):
    """The clock of the measured choices: with one thread this thread's CPU time (robust to
    other processes taking the core for a while), else wall time."""
    return time.thread_time_ns if n_threads <= 1 else time.perf_counter_ns


def _time_runs(plan, x, reps, clock):
    """The times of ``reps`` runs of ``plan`` on ``x`` (ns)."""
    ts = []
    for _ in range(reps):
        t0 = clock()
        plan.run(x)
        ts.append(clock() - t0)
    return ts


#: Chunk sizes a batch may be split into (those that divide it, leave a chunk for every
#: thread and are smaller than the batch), each timed against the layer-by-layer plan.
CHUNK_SIZES = (1, 2, 4, 8, 16)


def _choose_plan(snapshot, shape, dtype, n_threads, measure):
    """The plan for ``shape``, measured among: the layer-by-layer plan, chunked plans (each
    chunk through the whole network on one thread), and with several threads the same on
    one thread (layer by layer, and chunked). A plan using threads must beat the best
    single-thread one clearly, in its median and in its slow runs (90th percentile): on a
    busy machine each parallel region can wait for a thread the OS runs late."""
    plan = _Plan(snapshot, shape, dtype, n_threads, measure)
    n = shape[0]
    if not measure:
        return plan
    fits = _ChunkedPlan.fits(plan)
    sizes = [c for c in CHUNK_SIZES if n % c == 0 and n // c >= max(1, n_threads) and c < n]
    candidates: list = [plan]
    if fits:
        candidates += [_ChunkedPlan(snapshot, shape, dtype, n_threads, c) for c in sizes]
    if n_threads > 1:
        candidates.append(_Plan(snapshot, shape, dtype, 1, measure))
        if fits and sizes:
            candidates.append(_ChunkedPlan(snapshot, shape, dtype, 1, sizes[-1]))
    if len(candidates) == 1:
        return plan
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    clock = _clock(n_threads)  # wall time as soon as any candidate has threads
    first = min(min(_time_runs(c, x, 1, clock)) for c in candidates)
    reps = int(min(15, max(3, 2e7 // max(first, 1))))
    runs: list = [[] for _ in candidates]
    for _ in range(3):  # interleaved rounds
        for j, c in enumerate(candidates):
            runs[j] += _time_runs(c, x, reps, clock)
    if n_threads <= 1:  # CPU time: the fastest run (others sharing the core only slow it)
        score = [min(r) for r in runs]
        best = min(range(len(candidates)), key=score.__getitem__)
        return candidates[best] if score[best] < 0.95 * score[0] else plan
    med = [float(np.median(r)) for r in runs]
    p90 = [float(np.percentile(r, 90)) for r in runs]
    single = [j for j, c in enumerate(candidates) if c.n_threads <= 1]
    multi = [j for j in range(len(candidates)) if j not in single]
    best_single = min(single, key=med.__getitem__)
    best_multi = min(multi, key=med.__getitem__)
    if med[best_multi] < 0.85 * med[best_single] and p90[best_multi] < p90[best_single]:
        return candidates[best_multi]
    return candidates[best_single]


class _EpilogueLabel:
    """Stands for the epilogue step of a convolution run by another algorithm."""

    kind = "epilogue"

    def __init__(self, op):
        self.label = op.label.split(":")[0] + ": epilogue" + (" +residual" if op.residual is not None else "")
        self.relu = op.relu
        self.output = op.output
