"""Graph overhead: a model as nn.Graph against the same model as Sequential/Residual.

Run: ``pytest bench/test_bench_graph.py --benchmark-only``. ResNet-8 (1 x 28 x 28) rebuilt
as a flat :class:`fastconv.nn.Graph` over the very same layer modules (every Sequential
and Residual dissolved into nodes, each Residual's sum an ``Add`` node) against the
original nested containers: a training step (forward, loss, backward) at batch 64 and an
eval forward at batch 1, where the per-node Python cost is most visible.
"""
import numpy as np
import pytest

from fastconv import nn
from fastconv.models import resnet8


def flatten_to_graph(model):
    """``model``'s leaf layers as Graph nodes, wired as the containers wire them."""
    nodes = []

    def visit(m, src, prefix):
        if isinstance(m, nn.Sequential):
            for name, child in m.named_children():
                src = visit(child, src, f"{prefix}{name}_")
            return src
        if isinstance(m, nn.Residual):
            body = visit(m.body, src, prefix + "body_")
            skip = src if m.shortcut is None else visit(m.shortcut, src, prefix + "shortcut_")
            nodes.append((prefix + "add", nn.Add(), [body, skip]))
            return prefix + "add"
        name = prefix.rstrip("_")
        nodes.append((name, m, [src]))
        return name

    visit(model, "input", "")
    graph = nn.Graph(nodes)
    graph.needs_input_grad = model.needs_input_grad
    return graph


def _step(model, x, labels):
    loss = nn.CrossEntropyLoss()

    def run():
        model.zero_grad()
        loss(model(x), labels)
        model.backward(loss.backward())

    return run


@pytest.mark.parametrize("kind", ["containers", "graph"])
def test_resnet8_train_step_batch64(benchmark, kind):
    model = resnet8(rng=0)
    if kind == "graph":
        model = flatten_to_graph(model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    benchmark(_step(model, x, labels))


@pytest.mark.parametrize("kind", ["containers", "graph"])
def test_resnet8_eval_forward_batch1(benchmark, kind):
    model = resnet8(rng=0).eval()
    if kind == "graph":
        model = flatten_to_graph(model).eval()
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    benchmark(lambda: model(x))


def test_flattened_graph_computes_the_same():
    # not a timing: the graph measured above is the same network
    model = resnet8(rng=0, dtype=np.float64)
    graph = flatten_to_graph(model)
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28))
    y = model(x)
    np.testing.assert_array_equal(graph(x), y)
