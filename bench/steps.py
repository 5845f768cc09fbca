"""One fastconv training step as a closure, shared by the benches that time whole steps."""
from fastconv.nn import CrossEntropyLoss
from fastconv.optim import SGD


def fastconv_train_step(model, x, y, lr=0.05):
    """``step()``: forward, cross-entropy, backward and an SGD (momentum 0.9) update of
    ``model`` on the batch ``x`` (N, C, H, W), labels ``y`` (N,)."""
    opt = SGD(model.parameters(), lr=lr, momentum=0.9)
    loss = CrossEntropyLoss()

    def step():
        loss(model(x), y)
        opt.zero_grad()
        model.backward(loss.backward())
        opt.step()

    return step
