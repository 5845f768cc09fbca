"""nn.Graph: backward against float64 central differences (fan-out, fan-in, a node with two
outputs, several graph inputs and outputs, random DAGs), equality with the equivalent
Sequential / Residual (copied weights), state dict keys, freezing and input-gradient
routing (which backward passes run, which convolutions compute grad_input), summary rows
and receptive fields, and the build-time errors naming the node."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import nn
from fastconv.models import basic_block, lenet5
from fastconv.nn import Add, Cat, Graph, Split
from reference import numerical_grad, numerical_grad_at

D = np.float64


def conv(cin, cout, k, seed, **kw):
    return nn.Conv2d(cin, cout, k, rng=seed, dtype=D, **kw)


def as_tuple(y):
    return y if isinstance(y, tuple) else (y,)


def check_graph_gradients(graph, xs, rng, used=None, max_entries=12):
    """graph.backward against central differences of sum_k <y_k, g_k> with respect to every
    graph input and trainable parameter (``max_entries`` drawn entries of large arrays).
    ``used[k]`` False: output k gets gradient None (counted as zero)."""
    graph.zero_grad()
    ys = as_tuple(graph(*xs))
    used = used or [True] * len(ys)
    gs = [rng.standard_normal(y.shape) if u else None for y, u in zip(ys, used)]
    grads = graph.backward(gs[0] if len(ys) == 1 else tuple(gs))
    grads = as_tuple(grads) if len(xs) > 1 else (grads,)

    def f():
        return float(sum(np.sum(y * g) for y, g in zip(as_tuple(graph(*xs)), gs) if g is not None))

    def check(analytic, array, name):
        if array.size <= max_entries:
            np.testing.assert_allclose(analytic, numerical_grad(f, array), rtol=1e-6, atol=1e-8, err_msg=name)
        else:
            idx = rng.choice(array.size, max_entries, replace=False)
            np.testing.assert_allclose(analytic.reshape(-1)[idx], numerical_grad_at(f, array, idx),
                                       rtol=1e-6, atol=1e-8, err_msg=name)

    for i, (x, gx) in enumerate(zip(xs, grads)):
        assert gx is not None and gx.shape == x.shape, i
        check(gx, x, f"input {i}")
    for name, p in graph.named_parameters():
        if p.requires_grad:
            check(p.grad, p.data, name)
        else:
            assert not p.grad.any(), name
    return grads


def spy(layer):
    """Count ``layer``'s backward calls (``layer.calls``)."""
    cls = type(layer)

    def backward(self, grad_output):
        self.calls += 1
        return cls.backward(self, grad_output)

    layer.__class__ = type("Spy" + cls.__name__, (cls,), {"backward": backward})
    object.__setattr__(layer, "calls", 0)
    return layer


# -- gradients by central differences ---------------------------------------------------------
def test_fan_out_and_fan_in_by_add(rng):
    # conv1's output feeds relu and the Add (fan-out); the Add sums two paths (fan-in)
    g = Graph([
        ("conv1", conv(2, 3, 3, 0, padding=1), ["input"]),
        ("act", nn.Tanh(), ["conv1"]),
        ("conv2", conv(3, 3, 3, 1, padding=1), ["act"]),
        ("add", Add(), ["conv2", "conv1"]),
        ("out", nn.Sigmoid(), ["add"]),
    ])
    x = rng.standard_normal((2, 2, 5, 5))
    c1 = g.conv1(x)
    want = 1 / (1 + np.exp(-(g.conv2(np.tanh(c1)) + c1)))
    np.testing.assert_allclose(g(x), want, rtol=1e-13)
    check_graph_gradients(g, [x], rng)


def test_fan_in_by_cat_and_a_value_read_twice(rng):
    g = Graph([
        ("a", conv(2, 2, 1, 0), ["input"]),
        ("b", conv(2, 3, 3, 1, padding=1), ["input"]),
        ("cat", Cat(), ["a", "b", "a"]),  # "a" read twice by the same node
        ("mix", conv(7, 2, 3, 2, padding=1), ["cat"]),
        ("twice", Add(), ["mix", "mix"]),
    ])
    x = rng.standard_normal((2, 2, 4, 5))
    a, b = g.a(x), g.b(x)
    np.testing.assert_allclose(g(x), 2 * g.mix(np.concatenate([a, b, a], axis=1)), rtol=1e-13)
    check_graph_gradients(g, [x], rng)


@pytest.mark.parametrize("use_both", [True, False])
def test_node_with_two_outputs(rng, use_both):
    nodes = [
        ("conv", conv(2, 4, 3, 0, padding=1), ["input"]),
        ("split", Split([1, 3]), ["conv"], ["lo", "hi"]),
        ("t", nn.Tanh(), ["hi"]),
    ]
    if use_both:
        nodes += [("lo3", conv(1, 3, 1, 1), ["lo"]), ("add", Add(), ["t", "lo3"])]
    g = Graph(nodes)
    x = rng.standard_normal((2, 2, 4, 4))
    y = g(x)
    c = g.conv(x)
    want = np.tanh(c[:, 1:]) + (g.lo3(np.ascontiguousarray(c[:, :1])) if use_both else 0)
    np.testing.assert_allclose(y, want, rtol=1e-13)
    check_graph_gradients(g, [x], rng)


def test_two_graph_inputs_and_two_outputs(rng):
    g = Graph([
        ("ca", conv(2, 3, 3, 0, padding=1), ["a"]),
        ("cb", conv(1, 3, 1, 1), ["b"]),
        ("sum", Add(), ["ca", "cb"]),
        ("head1", nn.Tanh(), ["sum"]),
        ("head2", conv(3, 2, 3, 2), ["sum"]),
    ], inputs=["a", "b"], outputs=["head1", "head2"])
    a, b = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 1, 5, 5))
    y1, y2 = g(a, b)
    s = g.ca(a) + g.cb(b)
    np.testing.assert_allclose(y1, np.tanh(s), rtol=1e-13)
    np.testing.assert_allclose(y2, g.head2(s), rtol=1e-13)
    check_graph_gradients(g, [a, b], rng)
    check_graph_gradients(g, [a, b], rng, used=[False, True])  # None: that output counts as zero
    check_graph_gradients(g, [a, b], rng, used=[True, False])


def test_graph_output_also_read_inside_and_a_graph_input_as_output(rng):
    g = Graph([
        ("c", conv(2, 2, 3, 0, padding=1), ["x"]),
        ("t", nn.Tanh(), ["c"]),
    ], inputs="x", outputs=["c", "t", "x"])
    x = rng.standard_normal((1, 2, 4, 4))
    c, t, same = g(x)
    assert same is x
    check_graph_gradients(g, [x], rng)


def test_nested_graphs_and_graph_in_sequential(rng):
    inner = Graph([
        ("p", conv(3, 3, 3, 0, padding=1), ["u"]),
        ("q", nn.Tanh(), ["v"]),
        ("s", Add(), ["p", "q"]),
    ], inputs=["u", "v"], outputs=["s", "q"])
    outer = Graph([
        ("c", conv(2, 3, 1, 1), ["input"]),
        ("inner", inner, ["c", "input3"], ["s", "q"]),
        ("r", nn.ReLU(), ["c"]),
        ("input3", conv(2, 3, 3, 2, padding=1), ["input"]),
        ("cat", Cat(), ["s", "q", "r"]),
    ])
    model = nn.Sequential(conv(1, 2, 3, 3, padding=1), outer, nn.Flatten(), nn.Linear(9 * 16, 3, rng=4, dtype=D))
    x = rng.standard_normal((2, 1, 4, 4))
    check_graph_gradients(Graph([("m", model, ["input"])]), [x], rng, max_entries=10)
    assert [k for k in model.state_dict()][:6] == ["0.weight", "0.bias", "1.c.weight", "1.c.bias",
                                                  "1.inner.p.weight", "1.inner.p.bias"]


def _random_dag(draw):
    """A random DAG over (N, 3) values: unary ops (Tanh, Linear, Sigmoid) and merges (Add,
    Cat + Linear back to 3 features, Split into 1 + 2 then Cat back), with a float64 NumPy
    reference evaluation of the same wiring."""
    values, nodes, refs = ["input"], [], []
    n = draw(st.integers(1, 7))
    for i in range(n):
        kind = draw(st.sampled_from(["tanh", "linear", "sigmoid", "add", "catlin", "split"]))
        pick = lambda: draw(st.sampled_from(values))  # noqa: E731
        name = f"n{i}"
        if kind == "tanh":
            a = pick()
            nodes.append((name, nn.Tanh(), [a]))
            refs.append((name, lambda v, a=a: np.tanh(v[a])))
        elif kind == "sigmoid":
            a = pick()
            nodes.append((name, nn.Sigmoid(), [a]))
            refs.append((name, lambda v, a=a: 1 / (1 + np.exp(-v[a]))))
        elif kind == "linear":
            a, lin = pick(), nn.Linear(3, 3, rng=i, dtype=D)
            nodes.append((name, lin, [a]))
            refs.append((name, lambda v, a=a, lin=lin: v[a] @ lin.weight.data.T + lin.bias.data))
        elif kind == "add":
            a, b = pick(), pick()
            nodes.append((name, Add(), [a, b]))
            refs.append((name, lambda v, a=a, b=b: v[a] + v[b]))
        elif kind == "catlin":
            a, b = pick(), pick()
            lin = nn.Linear(6, 3, rng=i, dtype=D)
            nodes += [(name + "c", Cat(), [a, b]), (name, lin, [name + "c"])]
            refs.append((name, lambda v, a=a, b=b, lin=lin:
                         np.concatenate([v[a], v[b]], 1) @ lin.weight.data.T + lin.bias.data))
        else:
            a = pick()
            nodes += [(name + "s", Split([1, 2]), [a], [name + "lo", name + "hi"]),
                      (name, Cat(), [name + "hi", name + "lo"])]
            refs.append((name, lambda v, a=a: np.concatenate([v[a][:, 1:], v[a][:, :1]], 1)))
        values.append(name)
    outputs = sorted(set(draw(st.lists(st.sampled_from(values[1:]), min_size=1, max_size=2))))
    shuffled = draw(st.permutations(nodes))
    return shuffled, outputs, refs


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_dags_against_numpy_and_central_differences(data):
    nodes, outputs, refs = _random_dag(data.draw)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    g = Graph(nodes, outputs=outputs)  # listed in a random order: sorted topologically
    x = rng.standard_normal((2, 3))
    v = {"input": x}
    for name, fn in refs:
        v[name] = fn(v)
    ys = as_tuple(g(x))
    for y, name in zip(ys, outputs):
        np.testing.assert_allclose(y, v[name], rtol=1e-12, atol=1e-12)
    check_graph_gradients(g, [x], rng, max_entries=9)


# -- equal to Sequential / Residual -------------------------------------------------------------
def test_lenet5_as_a_graph_equals_the_sequential_bitwise(rng):
    seq = lenet5(rng=0, dtype=D)
    layers = list(seq)
    nodes = [(str(i), layer, ["input" if i == 0 else str(i - 1)]) for i, layer in enumerate(layers)]
    fresh = lenet5(rng=1, dtype=D)  # other weights, loaded from seq's state dict
    g = Graph([(name, m, ins) for (name, _, ins), m in zip(nodes, fresh)])
    assert list(g.state_dict()) == list(seq.state_dict())
    g.needs_input_grad = False  # as the model's (its first conv computes no grad_input)
    g.load_state_dict(seq.state_dict())
    x = rng.standard_normal((3, 1, 28, 28))
    gy = rng.standard_normal((3, 10))
    seq.zero_grad()
    g.zero_grad()
    np.testing.assert_array_equal(g(x), seq(x))
    assert g.backward(gy) is None and seq.backward(gy) is None
    for (k, p), (k2, q) in zip(g.named_parameters(), seq.named_parameters()):
        assert k == k2
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=k)
    # the graph's input gradient wanted, but the node reading the input declines it
    # (its needs_input_grad is False): None, not zeros
    g.needs_input_grad = True
    g(x)
    assert g.backward(gy) is None


def block_as_graph(block):
    """basic_block's Sequential(Residual(body, shortcut), ReLU) rebuilt as a Graph with the
    same modules (shared: the Graph takes them over)."""
    res, relu = block[0], block[1]
    body = list(res.body)
    names = ["conv1", "bn1", "relu1", "conv2", "bn2"]
    nodes = [(n, m, ["input" if i == 0 else names[i - 1]]) for i, (n, m) in enumerate(zip(names, body))]
    skip = "input"
    if res.shortcut is not None:
        nodes += [("sc_conv", res.shortcut[0], ["input"]), ("sc_bn", res.shortcut[1], ["sc_conv"])]
        skip = "sc_bn"
    nodes += [("add", Add(), ["bn2", skip]), ("relu", relu, ["add"])]
    return Graph(nodes)


@pytest.mark.parametrize("cin, cout, stride", [(16, 16, 1), (16, 32, 2)])
def test_resnet_block_as_a_graph_equals_the_residual(rng, cin, cout, stride):
    # resnet8's first block (identity shortcut) and a projection block as in its stage 2
    ref = basic_block(cin, cout, stride, rng=0, dtype=D)
    mine = block_as_graph(basic_block(cin, cout, stride, rng=5, dtype=D))
    keys = {"conv1": "0.body.0", "bn1": "0.body.1", "conv2": "0.body.3", "bn2": "0.body.4",
            "sc_conv": "0.shortcut.0", "sc_bn": "0.shortcut.1"}
    sd = ref.state_dict()
    mine.load_state_dict({k: sd[keys[k.split(".")[0]] + k[k.index("."):]] for k in mine.state_dict()})
    x = rng.standard_normal((2, cin, 8, 8))
    for training in (True, False):
        ref.train(training)
        mine.train(training)
        for _ in range(2):  # the second step reuses the layers' arrays
            ref.zero_grad()
            mine.zero_grad()
            y = ref(x)
            np.testing.assert_array_equal(mine(x), y)
            gy = rng.standard_normal(y.shape)
            np.testing.assert_array_equal(mine.backward(gy), ref.backward(gy))
            got = dict(mine.named_parameters())
            for k, p in got.items():
                np.testing.assert_array_equal(p.grad, dict(ref.named_parameters())[keys[k.split(".")[0]] + k[k.index("."):]].grad, err_msg=k)
        for k, b in mine.named_buffers():  # BatchNorm's running statistics moved alike
            np.testing.assert_array_equal(b, dict(ref.named_buffers())[keys[k.split(".")[0]] + k[k.index("."):]])


def test_graph_matches_torch_functional_wiring(rng):
    torch = pytest.importorskip("torch")
    g = Graph([
        ("c1", conv(2, 4, 3, 0, padding=1), ["input"]),
        ("split", Split(2), ["c1"], ["a", "b"]),
        ("ta", nn.Tanh(), ["a"]),
        ("cat", Cat(), ["b", "ta", "input"]),
        ("pad", nn.ReflectionPad2d((1, 0, 2, 1)), ["cat"]),
        ("c2", conv(6, 3, 3, 1), ["pad"]),
    ])
    x = rng.standard_normal((2, 2, 5, 5))
    w1, b1 = (torch.tensor(g.c1.weight.data, requires_grad=True), torch.tensor(g.c1.bias.data, requires_grad=True))
    w2, b2 = (torch.tensor(g.c2.weight.data, requires_grad=True), torch.tensor(g.c2.bias.data, requires_grad=True))
    tx = torch.tensor(x, requires_grad=True)
    F = torch.nn.functional
    c1 = F.conv2d(tx, w1, b1, padding=1)
    a, b = torch.split(c1, 2, dim=1)
    out = F.conv2d(F.pad(torch.cat([b, torch.tanh(a), tx], 1), (1, 0, 2, 1), mode="reflect"), w2, b2)
    gy = rng.standard_normal(out.shape)
    out.backward(torch.tensor(gy))
    g.zero_grad()
    np.testing.assert_allclose(g(x), out.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g.backward(gy), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    for p, t in ((g.c1.weight, w1), (g.c1.bias, b1), (g.c2.weight, w2), (g.c2.bias, b2)):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-11, atol=1e-12)


# -- module behaviour ------------------------------------------------------------------------------
def small_graph(dtype=D):
    return Graph([
        ("conv1", nn.Conv2d(1, 2, 3, padding=1, rng=0, dtype=dtype), ["input"]),
        ("bn", nn.BatchNorm2d(2, dtype=dtype), ["conv1"]),
        ("relu", nn.ReLU(), ["bn"]),
        ("drop", nn.Dropout(0.5), ["relu"]),
        ("add", Add(), ["drop", "conv1"]),
        ("flat", nn.Flatten(), ["add"]),
        ("fc", nn.Linear(2 * 4 * 4, 3, rng=1, dtype=dtype), ["flat"]),
    ])


def test_state_dict_parameters_modes_and_attribute_access():
    g = small_graph()
    assert list(g.state_dict()) == ["conv1.weight", "conv1.bias", "bn.weight", "bn.bias", "bn.running_mean",
                                    "bn.running_var", "bn.num_batches_tracked", "fc.weight", "fc.bias"]
    assert [k for k, _ in g.named_parameters()] == ["conv1.weight", "conv1.bias", "bn.weight", "bn.bias",
                                                    "fc.weight", "fc.bias"]
    assert len(g.parameters()) == 6 and g.conv1 is g["conv1"] and len(g) == 7
    assert [n.name for n in g.nodes] == ["conv1", "bn", "relu", "drop", "add", "flat", "fc"]
    assert g.nodes[4].inputs == ("drop", "conv1") and g.nodes[4].outputs == ("add",)
    assert g.inputs == ("input",) and g.outputs == ("fc",)
    g.eval()
    assert not any(m.training for m in g.modules())
    g.train()
    assert all(m.training for m in g.modules())
    other = small_graph()
    for p in other.parameters():
        p.data[...] = 0.5
    other.bn.running_mean[...] = 3.0
    g.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(g.conv1.weight.data, 0.5)
    np.testing.assert_array_equal(g.bn.running_mean, 3.0)
    g.astype(np.float32)
    assert all(p.dtype == np.float32 for p in g.parameters()) and g.bn.running_var.dtype == np.float32
    g.requires_grad_(False)
    assert not g.has_trainable_parameters()
    with pytest.raises(KeyError, match="no node 'nope'"):
        g["nope"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        g.nope


def test_copies_and_pickles_behave_the_same(rng):
    import copy
    import pickle

    g = small_graph().eval()
    x = rng.standard_normal((2, 1, 4, 4))
    for other in (copy.deepcopy(g), pickle.loads(pickle.dumps(g))):
        assert other.conv1 is not g.conv1 and [n.name for n in other.nodes] == [n.name for n in g.nodes]
        np.testing.assert_array_equal(other(x), g(x))


def test_node_names_that_shadow_attributes_are_still_children(rng):
    g = Graph([("forward", nn.Tanh(), ["input"]), ("inputs", nn.ReLU(), ["forward"])])
    x = rng.standard_normal((2, 3))
    np.testing.assert_allclose(g(x), np.maximum(np.tanh(x), 0))
    assert isinstance(g["forward"], nn.Tanh) and g.inputs == ("input",)


def test_replacing_a_node_module_by_assignment(rng):
    g = Graph([("a", nn.Tanh(), ["input"]), ("b", nn.Linear(3, 2, rng=0, dtype=D), ["a"])])
    g.b = nn.Linear(3, 2, rng=7, dtype=D)
    x = rng.standard_normal((2, 3))
    np.testing.assert_allclose(g(x), g.b(np.tanh(x)))
    check_graph_gradients(g, [x], rng)


def test_repr_shows_the_wiring():
    text = repr(Graph([("c", nn.Conv2d(1, 2, 3), ["x"]), ("s", Split(2), ["c"], ["a", "b"]),
                       ("add", Add(), ["a", "b"])], inputs="x"))
    assert text.startswith("Graph(\n  inputs=['x'], outputs=['add']\n  (c) <- x: Conv2d(1, 2, kernel_size=(3, 3)")
    assert "(s) <- c -> a, b: Split(sections=2, dim=1)" in text and "(add) <- a, b: Add()" in text


def test_topological_order_is_stable_with_respect_to_the_listing():
    nodes = [("d", Add(), ["b", "c"]), ("c", nn.ReLU(), ["input"]), ("b", nn.Tanh(), ["input"]),
             ("e", nn.Sigmoid(), ["input"])]
    g = Graph(nodes, outputs=["d", "e"])
    assert [n.name for n in g.nodes] == ["c", "b", "d", "e"]
    assert list(g._modules) == ["d", "c", "b", "e"]  # children (state dict order) as listed


def test_dead_end_nodes_run_forward_but_not_backward(rng):
    dead = spy(nn.Linear(3, 3, rng=1, dtype=D))
    g = Graph([("a", nn.Linear(3, 3, rng=0, dtype=D), ["input"]), ("dead", dead, ["a"]),
               ("out", nn.Tanh(), ["a"])])
    assert g.outputs == ("out",)
    x = rng.standard_normal((2, 3))
    check_graph_gradients(g, [x], rng)
    assert dead.calls == 0 and not dead.weight.grad.any()


def test_backward_returns_zeros_for_an_input_nothing_reads_and_none_when_not_needed(rng):
    g = Graph([("t", nn.Tanh(), ["a"])], inputs=["a", "unused"])
    a, u = rng.standard_normal((2, 3)), rng.standard_normal((4,))
    g(a, u)
    ga, gu = g.backward(np.ones((2, 3)))
    np.testing.assert_allclose(ga, 1 - np.tanh(a) ** 2)
    np.testing.assert_array_equal(gu, np.zeros(4))
    g(a, u)
    ga, gu = g.backward(None)  # no gradient at all: zeros
    assert not ga.any() and not gu.any()
    g.needs_input_grad = False
    g(a, u)
    assert g.backward(np.ones((2, 3))) == (None, None)


def test_steady_state_reuses_arrays_and_held_outputs_survive(rng):
    g = Graph([("c", conv(2, 2, 3, 0, padding=1), ["input"]), ("r", nn.ReLU(), ["c"]),
               ("add", Add(), ["r", "c"])])
    x1, x2 = rng.standard_normal((2, 1, 2, 4, 4))
    y1 = g(x1)
    keep = y1.copy()
    g.backward(np.ones_like(y1))
    y2 = g(x2)
    np.testing.assert_array_equal(y1, keep)
    assert not np.shares_memory(y1, y2)
    del y1, y2
    ids = set()
    for _ in range(3):
        y = g(x1)
        ids.add(id(y))
        del y
        g.backward(np.ones((1, 2, 4, 4)))
    assert len(ids) == 1


# -- freezing and input-gradient routing ------------------------------------------------------------
@pytest.fixture
def conv_backward_log(monkeypatch):
    """(weight array id, needs_input_grad) of every convolution backward computed."""
    log = []
    real = fastconv.functional.conv2d_backward_unchecked

    def recording(grad_output, x, weight, g, algorithm, needs_input, *args, **kwargs):
        log.append((id(weight), bool(needs_input)))
        return real(grad_output, x, weight, g, algorithm, needs_input, *args, **kwargs)

    monkeypatch.setattr(fastconv.functional, "conv2d_backward_unchecked", recording)
    return log


def test_frozen_prefix_is_skipped_and_the_next_conv_computes_no_grad_input(rng, conv_backward_log):
    c1, c2, c3 = conv(1, 2, 3, 0, padding=1), conv(2, 2, 3, 1, padding=1), conv(2, 2, 3, 2, padding=1)
    g = Graph([("c1", c1, ["input"]), ("r1", nn.ReLU(), ["c1"]), ("c2", c2, ["r1"]),
               ("r2", spy(nn.ReLU()), ["c2"]), ("c3", c3, ["r2"]), ("add", Add(), ["c3", "r2"])])
    g.needs_input_grad = False
    c1.requires_grad_(False)
    c2.requires_grad_(False)
    c1.backward = c2.backward = lambda grad: pytest.fail("a frozen prefix conv's backward was called")
    x = rng.standard_normal((2, 1, 4, 4))
    y = g(x)
    assert g.backward(np.ones_like(y)) is None
    assert conv_backward_log == [(id(c3.weight.data), False)]  # c3: weight gradient only
    assert g.r2.calls == 0 and c3.weight.grad.any()
    # unfreeze c2: c2 computes its weight gradient but no grad_input; c3 now passes one on
    c2.requires_grad_(True)
    del c2.backward
    conv_backward_log.clear()
    g(x)
    g.backward(np.ones_like(y))
    assert conv_backward_log == [(id(c3.weight.data), True), (id(c2.weight.data), False)]


def test_frozen_branch_of_a_fan_in(rng, conv_backward_log):
    # two branches from the input; the frozen one is not called, the trainable one is
    frozen, live = conv(2, 2, 3, 0, padding=1), conv(2, 2, 3, 1, padding=1)
    frozen.requires_grad_(False)
    head = conv(2, 2, 1, 2)
    g = Graph([("f", frozen, ["input"]), ("l", live, ["input"]), ("add", Add(), ["f", "l"]), ("head", head, ["add"])])
    g.needs_input_grad = False
    x = rng.standard_normal((1, 2, 4, 4))
    y = g(x)
    assert g.backward(np.ones_like(y)) is None
    assert conv_backward_log == [(id(head.weight.data), True), (id(live.weight.data), False)]
    # the graph's input gradient needed again: the frozen branch runs for grad_input only
    g.needs_input_grad = True
    conv_backward_log.clear()
    check_graph_gradients(g, [x], rng)
    assert (id(frozen.weight.data), True) in conv_backward_log


def test_gradient_plan_is_cached_until_a_flag_changes(rng):
    c = conv(1, 2, 3, 0, padding=1)
    g = Graph([("c", c, ["input"]), ("t", nn.Tanh(), ["c"])])
    x = rng.standard_normal((1, 1, 4, 4))
    g(x)
    calls = []
    real = type(c).has_trainable_parameters
    c.has_trainable_parameters = lambda: calls.append(1) or real(c)
    g(x)
    g(x)
    assert calls == []  # the same flags: no re-planning per step
    c.weight.requires_grad = False  # bumps the version counter
    g(x)
    assert calls == [1]
    g.needs_input_grad = False
    g(x)
    assert calls == [1, 1] and not c._input_grad_needed()


def test_frozen_graph_inside_a_sequential(rng):
    g = Graph([("c", conv(1, 2, 3, 0, padding=1), ["input"]), ("t", nn.Tanh(), ["c"])])
    model = nn.Sequential(g, nn.Flatten(), nn.Linear(2 * 16, 3, rng=1, dtype=D))
    model.needs_input_grad = False
    g.requires_grad_(False)
    g.c.backward = lambda grad: pytest.fail("frozen graph's conv was called")
    x = rng.standard_normal((2, 1, 4, 4))
    y = model(x)
    assert model.backward(np.ones_like(y)) is None
    assert model[2].weight.grad.any()


# -- summary ----------------------------------------------------------------------------------------
def test_summary_rows_in_execution_order_and_field_max_over_paths():
    block = basic_block(16, 32, 2, rng=0)
    graph = block_as_graph(basic_block(16, 32, 2, rng=0))
    ref = block.summary((1, 16, 8, 8))
    s = graph.summary((1, 16, 8, 8))
    assert [r["name"] for r in s.rows] == ["conv1", "bn1", "relu1", "conv2", "bn2", "sc_conv", "sc_bn", "add", "relu"]
    assert [r["type"] for r in s.rows][-2:] == ["Add", "ReLU"]
    # same numbers as the Residual version, row for row
    for a, b in zip(s.rows, ref.rows):
        for key in ("output_shape", "params", "mult_adds", "receptive_field", "jump"):
            assert a[key] == b[key], (a["name"], key)
    assert s.rows[-2]["input_shape"] == ((1, 32, 4, 4), (1, 32, 4, 4))
    assert s.total_params == ref.total_params and s.total_mult_adds == ref.total_mult_adds
    # field of the Add: the maximum over its paths (3x3 s2 + 3x3 = 7 against the 1x1 shortcut)
    assert s.rows[-2]["receptive_field"] == (7, 7) and s.rows[-2]["jump"] == (2, 2)
    assert "add (Add)" in str(s)


def test_summary_of_split_and_several_inputs_and_outputs():
    g = Graph([("ca", nn.Conv2d(1, 4, 3), ["a"]), ("cb", nn.Conv2d(2, 4, 5, padding=1), ["b"]),
               ("split", Split(2), ["ca"], ["lo", "hi"]), ("cat", Cat(), ["hi", "cb"]), ("lo2", nn.ReLU(), ["lo"])],
              inputs=["a", "b"], outputs=["cat", "lo2"])
    s = g.summary([(1, 1, 8, 8), (1, 2, 8, 8)])
    assert [r["name"] for r in s.rows] == ["ca", "cb", "split", "cat", "lo2"]
    assert s.rows[2]["output_shape"] == ((1, 2, 6, 6), (1, 2, 6, 6))
    assert s.rows[3]["receptive_field"] == (5, 5)  # max over 3 (split of ca) and 5 (cb)
    assert s.rows[4]["receptive_field"] == (3, 3)
    assert s.output_shape == ((1, 6, 6, 6), (1, 2, 6, 6)) and s.input_shape == ((1, 1, 8, 8), (1, 2, 8, 8))
    assert "N=1" in str(s)


# -- build-time and run-time errors -------------------------------------------------------------------
def R():
    return nn.ReLU()


BUILD_CASES = [
    (lambda: Graph([("a", R(), ["b"]), ("b", R(), ["a"])]), ValueError,
     "node 'a': the graph has a cycle through nodes 'a' -> 'b' -> 'a'"),
    (lambda: Graph([("x", R(), ["input"]), ("a", R(), ["c", "x"]), ("b", R(), ["a"]), ("c", R(), ["b"]),
                    ("d", R(), ["c"])]), ValueError, "nodes ['d'] depend on it (unreachable from the inputs)"),
    (lambda: Graph([("self", R(), ["self"])]), ValueError, "cycle through nodes 'self' -> 'self'"),
    (lambda: Graph([("a", R(), ["input"]), ("b", R(), ["nothing"])]), ValueError,
     "node 'b': input 'nothing' is neither a graph input ['input'] nor an output of any node"),
    (lambda: Graph([("a", R(), ["input"]), ("a", R(), ["input"])]), ValueError, "node 'a': duplicate node name"),
    (lambda: Graph([("a", R(), ["input"]), ("b", R(), ["input"], ["a"])]), ValueError,
     "node 'b': output value 'a' is already an output of node 'a'"),
    (lambda: Graph([("input", R(), ["input"])]), ValueError, "output value 'input' is already a graph input"),
    (lambda: Graph([("a", R(), ["input"])], outputs=["a", "zz"]), ValueError, "graph output 'zz' is produced by no node"),
    (lambda: Graph([("a", R())]), ValueError, "node 'a': each node must be a tuple (name, module, inputs)"),
    (lambda: Graph([("a", R(), ["input"], ["a"], "extra")]), ValueError, "node 'a': each node must be a tuple"),
    (lambda: Graph(["a"]), ValueError, "node 0: each node must be a tuple"),
    (lambda: Graph([(1, R(), ["input"])]), TypeError, "node 0: the name must be a str"),
    (lambda: Graph([("a.b", R(), ["input"])]), ValueError, "without '.'"),
    (lambda: Graph([("", R(), ["input"])]), ValueError, "non-empty str without '.'"),
    (lambda: Graph([("a", "relu", ["input"])]), TypeError, "node 'a': the module must be a fastconv.nn.Module"),
    (lambda: Graph([("a", R(), [])]), ValueError, "node 'a': inputs must name at least one value"),
    (lambda: Graph([("a", R(), [3])]), TypeError, "node 'a': inputs must be value names (str)"),
    (lambda: Graph([("a", R(), None)]), TypeError, "node 'a': inputs must be a str or a list of str"),
    (lambda: Graph([("a", R(), ["input"], ["p", "p"])]), ValueError, "node 'a': outputs name a value twice"),
    (lambda: Graph([("a", Split(3), ["input"], ["p", "q"])]), ValueError, "node 'a': Split gives 3 outputs"),
    (lambda: Graph([("g", Graph([("t", R(), ["u"])], inputs=["u", "v"]), ["input"])]), ValueError,
     "node 'g': Graph takes 2 inputs"),
    (lambda: (lambda m: Graph([("a", m, ["input"]), ("b", m, ["a"])]))(R()), ValueError,
     "node 'b': its module is already used by node 'a'"),
    (lambda: Graph([]), ValueError, "nodes must hold at least one"),
    (lambda: Graph("abc"), TypeError, "nodes must be a list of"),
    (lambda: Graph([("a", R(), ["x"])], inputs=["x", "x"]), ValueError, "inputs name 'x' twice"),
    (lambda: Graph([("a", R(), ["x"])], inputs=[]), ValueError, "inputs must name at least one value"),
    (lambda: Graph([("a", R(), ["x"])], inputs=[1]), TypeError, "inputs must be value names"),
    (lambda: Graph([("a", R(), ["input"])], outputs=[None]), TypeError, "outputs must be value names"),
    # shape mismatches refused at build time with input_shapes, naming the node and its input shapes
    (lambda: Graph([("c", nn.Conv2d(1, 4, 3), ["input"]), ("add", Add(), ["c", "input"])],
                   input_shapes=(2, 1, 8, 8)), ValueError,
     "node 'add' (Add) on inputs of shapes [(2, 4, 6, 6), (2, 1, 8, 8)]: Add inputs must have broadcastable shapes"),
    (lambda: Graph([("c", nn.Conv2d(3, 4, 3), ["input"])], input_shapes=[(2, 1, 8, 8)]), ValueError,
     "node 'c' (Conv2d) on inputs of shapes [(2, 1, 8, 8)]: Conv2d expects x with 3 channels"),
    (lambda: Graph([("fc", nn.Linear(5, 2), ["a"]), ("cat", Cat(), ["fc", "b"])], inputs=["a", "b"],
                   input_shapes=[(4, 5), (3, 2)]), ValueError,
     "node 'cat' (Cat) on inputs of shapes [(4, 2), (3, 2)]"),
    (lambda: Graph([("s", Split([1, 1]), ["input"], ["p", "q"])], input_shapes=(1, 3)), ValueError,
     "Graph refuses input_shapes [(1, 3)]: node 's' (Split) on inputs of shapes [(1, 3)]: Split sections [1, 1] sum to 2"),
    (lambda: Graph([("a", R(), ["x"])], inputs=["x", "y"], input_shapes=[(1, 2)]), ValueError,
     "input_shapes must hold 2 shape(s)"),
    (lambda: Graph([("a", R(), ["input"])], input_shapes=(1, 2.0)), TypeError, "input_shapes[0] must be a tuple of ints"),
    (lambda: Graph([("a", R(), ["input"])], input_shapes="1,2"), TypeError, "input_shapes must be a list of shapes"),
    (lambda: Graph([("a", R(), ["input"])], input_shapes=(1, -2)), ValueError, "input_shapes[0] must have sizes >= 0"),
    (lambda: Graph([("a", R(), ["input"])]).value_shapes((1, 2), dtype=np.int32), TypeError,
     "dtype must be float32 or float64"),
    (lambda: Graph([("a", nn.Linear(2, 3), ["input"])]).value_shapes([(4, 2), (4, 2)]), ValueError,
     "input_shapes must hold 1 shape(s), one per graph input ['input'], got 2"),
]


@pytest.mark.parametrize("make, exc, words", BUILD_CASES)
def test_build_errors_name_the_node(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    assert words in str(info.value)


def test_build_time_shape_check_leaves_the_modules_as_they_were(rng):
    g = small_graph()
    x = rng.standard_normal((2, 1, 4, 4))
    y = g(x)
    gy = rng.standard_normal(y.shape)
    bn = g.bn.running_mean.copy(), g.bn.running_var.copy(), int(g.bn.num_batches_tracked)
    shapes = g.value_shapes((5, 1, 4, 4))  # between a forward and its backward
    assert shapes["input"] == (5, 1, 4, 4) and shapes["add"] == (5, 2, 4, 4) and shapes["fc"] == (5, 3)
    assert list(shapes) == ["input", "conv1", "bn", "relu", "drop", "add", "flat", "fc"]
    assert all(m.training for m in g.modules())
    np.testing.assert_array_equal(g.bn.running_mean, bn[0])
    np.testing.assert_array_equal(g.bn.running_var, bn[1])
    assert int(g.bn.num_batches_tracked) == bn[2]
    gx = g.backward(gy)  # the earlier forward's backward still works, as if nothing happened
    assert gx.shape == x.shape
    built = Graph([("c", nn.Conv2d(1, 2, 3, rng=0), ["input"]), ("bn", nn.BatchNorm2d(2), ["c"])],
                  input_shapes=(1, 1, 5, 5))
    assert int(built.bn.num_batches_tracked) == 0 and built.bn.training


RUN_CASES = [
    (lambda g, x: g(x, x), TypeError, "Graph.forward takes 1 input(s) ['input'], got 2"),
    (lambda g, x: g([1.0]), TypeError, "Graph input 'input' must be a numpy.ndarray"),
    (lambda g, x: g(x[:, :1]), ValueError,
     "node 'c' (Conv2d) on inputs of shapes [(1, 1, 5, 5)]: Conv2d expects x with 2 channels"),
    (lambda g, x: (g(x), g.backward(np.zeros((1, 3, 3, 3))))[1], ValueError,
     "the gradient of graph output 'add' must have shape (1, 2, 3, 3)"),
    (lambda g, x: (g(x), g.backward(np.zeros((1, 2, 3, 3), np.float32)))[1], ValueError, "dtype float64"),
    (lambda g, x: (g(x), g.backward("g"))[1], TypeError, "the gradient of graph output 'add' must be a numpy.ndarray"),
    (lambda g, x: (g(x), g.backward((None, None)))[1], TypeError, "grad_output must be an array (None for zero)"),
    (lambda g, x: Graph([("c", nn.Conv2d(2, 2, 3), ["input"])]).backward(None), RuntimeError, "before forward"),
]


@pytest.mark.parametrize("call, exc, words", RUN_CASES)
def test_run_errors_name_the_node(rng, call, exc, words):
    g = Graph([("c", conv(2, 2, 3, 0), ["input"]), ("t", nn.Tanh(), ["c"]), ("add", Add(), ["t", "c"])])
    with pytest.raises(exc) as info:
        call(g, rng.standard_normal((1, 2, 5, 5)))
    assert words in str(info.value)


class _TwoOut(nn.Module):
    def __init__(self, result):
        super().__init__()
        self.result = result

    def forward(self, x):
        return self.result(x)

    def backward(self, grads):
        return grads[0]


@pytest.mark.parametrize("result, words", [
    (lambda x: x, "forward must return a tuple of 2 arrays ['a', 'b'], got ndarray"),
    (lambda x: (x, x, x), "got tuple of length 3"),
    (lambda x: (x, "b"), "output 'b' must be a numpy.ndarray, got str"),
])
def test_multi_output_node_contract_is_checked(rng, result, words):
    g = Graph([("two", _TwoOut(result), ["input"], ["a", "b"])])
    with pytest.raises(TypeError, match="node 'two' \\(_TwoOut\\): ") as info:
        g(rng.standard_normal((2, 2)))
    assert words in str(info.value)


def test_single_output_node_returning_a_tuple_and_a_bad_backward(rng):
    g = Graph([("two", _TwoOut(lambda x: (x, x)), ["input"])])
    with pytest.raises(TypeError, match="forward must return a numpy.ndarray for its one output, got tuple"):
        g(rng.standard_normal((2, 2)))
    bad = Graph([("add", _TwoOut(lambda x: x + 1), ["input", "input"])])
    bad.add.forward = lambda a, b: a + b
    y = bad(rng.standard_normal((2, 2)))
    with pytest.raises(TypeError, match="node 'add' \\(_TwoOut\\): backward must return a tuple of 2 gradients"):
        bad.backward(np.ones_like(y))


def test_split_into_one_keeps_the_tuple_contract(rng):
    g = Graph([("s", Split(1), ["input"]), ("t", nn.Tanh(), ["s"])])
    x = rng.standard_normal((2, 3))
    np.testing.assert_allclose(g(x), np.tanh(x))
    check_graph_gradients(g, [x], rng)
