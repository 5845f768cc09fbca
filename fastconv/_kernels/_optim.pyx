"""Fused optimizer updates: one pass over a parameter, its gradient and its state.

The NumPy form of SGD-with-momentum or Adam makes 4-8 passes and as many temporaries per
parameter; here each element is read and written once. Parameters are small (LeNet-5's
largest is 48k elements), so these loops are serial.
"""
from cython cimport floating
from libc.math cimport sqrt


def sgd_update(floating[::1] param, const floating[::1] grad, floating[::1] buf,
               double lr, double momentum, double weight_decay, bint nesterov, bint first_step):
    """One SGD step in place, PyTorch's rule (dampening 0).

    ``g = grad + weight_decay*param``; with momentum ``buf = g`` on the first step, else
    ``buf = momentum*buf + g``; the step uses ``g + momentum*buf`` (Nesterov) or ``buf``;
    ``param -= lr * step``. ``buf`` is unused (may be empty) when momentum is 0.
    """
    cdef Py_ssize_t i, n = param.shape[0]
    cdef floating g, b
    cdef floating flr = <floating>lr, mu = <floating>momentum, wd = <floating>weight_decay
    cdef floating keep = 0 if first_step else 1  # buf = keep*mu*buf + g
    cdef floating look = 1 if nesterov else 0    # step = look*g + mu*buf  or  buf
    # The options are turned into arithmetic so the loop has no branches and vectorises
    # (branches inside it kept it scalar: 8 us for LeNet-5's 10k-element F6 weight).
    with nogil:
        if momentum == 0:
            for i in range(n):
                param[i] = param[i] - flr * (grad[i] + wd * param[i])
        else:
            for i in range(n):
                g = grad[i] + wd * param[i]
                b = keep * mu * buf[i] + g
                buf[i] = b
                param[i] = param[i] - flr * (look * (g + mu * b) + (1 - look) * b)


def adam_update(floating[::1] param, const floating[::1] grad, floating[::1] exp_avg,
                floating[::1] exp_avg_sq, double lr, double beta1, double beta2, double eps,
                double weight_decay, Py_ssize_t step):
    """One Adam step in place (PyTorch's rule, bias-corrected; ``step`` counts from 1).

    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g*g``,
    ``param -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``.
    """
    cdef Py_ssize_t i, n = param.shape[0]
    cdef double c1 = 1.0 - beta1 ** step, c2 = 1.0 - beta2 ** step
    cdef floating step_size = <floating>(lr / c1), inv_sqrt_c2 = <floating>(1.0 / sqrt(c2))
    cdef floating b1 = <floating>beta1, b2 = <floating>beta2, e = <floating>eps
    cdef floating wd = <floating>weight_decay, g, m, v
    with nogil:
        for i in range(n):
            g = grad[i] + wd * param[i]  # no branch: the loop vectorises
            m = b1 * exp_avg[i] + (1 - b1) * g
            v = b2 * exp_avg_sq[i] + (1 - b2) * g * g
            exp_avg[i] = m
            exp_avg_sq[i] = v
            param[i] = param[i] - step_size * m / (sqrt(v) * inv_sqrt_c2 + e)
