"""Fused optimizer updates: one compiled call updates every parameter of a dtype group.

The NumPy form of SGD-with-momentum or Adam makes 4-8 passes and as many temporaries per
parameter, and a compiled call per parameter still cost ~5 us of Python each (LeNet-5:
10 parameters, ~55 us a step, none of it parallel). Here the caller passes the addresses
of every parameter's data, gradient and state once; the elements of the whole group,
laid end to end, are split into one contiguous range per thread. Each element is read and
written once by one thread, so the result does not depend on the thread count.

The caller (``fastconv.optim``) guarantees that every address is that of a C-contiguous,
writeable (for data and state) array of the group's dtype with the stated number of
elements, kept alive for the duration of the call.
"""
from cython.parallel cimport parallel, threadid
from libc.math cimport sqrt
from libc.stdint cimport intptr_t

from ._openmp_helpers cimport omp_get_num_threads

# Below this many elements in a group, one thread: a parallel region costs more.
cdef Py_ssize_t PARALLEL_MIN = 16384


cdef extern from "_optim_spans.h":
    void fc_sgd_span_f(float* param, const float* grad, float* buf, Py_ssize_t n, double lr,
                       double momentum, double dampening, double weight_decay, int nesterov,
                       int first_step) noexcept nogil
    void fc_sgd_span_d(double* param, const double* grad, double* buf, Py_ssize_t n,
                       double lr, double momentum, double dampening, double weight_decay,
                       int nesterov, int first_step) noexcept nogil
    void fc_adam_span_f(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                        float* max_exp_avg_sq, Py_ssize_t n, double step_size,
                        double inv_sqrt_c2, double beta1, double beta2, double eps,
                        double weight_decay, double shrink) noexcept nogil
    void fc_adam_span_d(double* param, const double* grad, double* exp_avg,
                        double* exp_avg_sq, double* max_exp_avg_sq, Py_ssize_t n,
                        double step_size, double inv_sqrt_c2, double beta1, double beta2,
                        double eps, double weight_decay, double shrink) noexcept nogil


cdef inline Py_ssize_t thread_start(Py_ssize_t total, int t, int n_threads) noexcept nogil:
    """Where thread t's share of the group's elements starts (thread n_threads: the end), in
    multiples of 16 (a cache line of float32) so that two threads rarely write one line."""
    cdef Py_ssize_t blocks = (total + 15) // 16
    return min(total, (blocks * t // n_threads) * 16)


cdef inline int team_size(Py_ssize_t total, int n_threads) noexcept nogil:
    return max(n_threads, 1) if total >= PARALLEL_MIN else 1


cdef enum Rule:
    SGD, ADAM


cdef void update_span(Rule rule, bint is_double, const intptr_t[:, ::1] addresses,
                      Py_ssize_t j, Py_ssize_t a, Py_ssize_t n, const double* hp) noexcept nogil:
    """Elements [a, a+n) of parameter j: rows of ``addresses`` are data, gradient, state."""
    cdef intptr_t buf
    if rule == SGD:  # hp: lr, momentum, dampening, weight_decay, nesterov, first_step
        # without momentum the kernel never touches the buffer; the gradient stands in
        buf = addresses[2, j] if hp[1] != 0 else addresses[1, j]
        if is_double:
            fc_sgd_span_d((<double*>addresses[0, j]) + a, (<const double*>addresses[1, j]) + a,
                          (<double*>buf) + a, n, hp[0], hp[1], hp[2], hp[3], <int>hp[4],
                          <int>hp[5])
        else:
            fc_sgd_span_f((<float*>addresses[0, j]) + a, (<const float*>addresses[1, j]) + a,
                          (<float*>buf) + a, n, hp[0], hp[1], hp[2], hp[3], <int>hp[4],
                          <int>hp[5])
    else:  # hp: step_size, inv_sqrt_c2, beta1, beta2, eps, weight_decay, shrink, amsgrad
        if is_double:
            fc_adam_span_d((<double*>addresses[0, j]) + a, (<const double*>addresses[1, j]) + a,
                           (<double*>addresses[2, j]) + a, (<double*>addresses[3, j]) + a,
                           ((<double*>addresses[4, j]) + a) if hp[7] != 0 else NULL, n,
                           hp[0], hp[1], hp[2], hp[3], hp[4], hp[5], hp[6])
        else:
            fc_adam_span_f((<float*>addresses[0, j]) + a, (<const float*>addresses[1, j]) + a,
                           (<float*>addresses[2, j]) + a, (<float*>addresses[3, j]) + a,
                           ((<float*>addresses[4, j]) + a) if hp[7] != 0 else NULL, n,
                           hp[0], hp[1], hp[2], hp[3], hp[4], hp[5], hp[6])


cdef void run_update(Rule rule, bint is_double, const intptr_t[:, ::1] addresses,
                     const Py_ssize_t[::1] offsets, const double* hp,
                     int n_threads) noexcept nogil:
    """Apply ``rule`` to every element of the group, one contiguous range per thread."""
    cdef Py_ssize_t n_params = addresses.shape[1], total = offsets[n_params]
    cdef Py_ssize_t j, lo, hi, a, b
    cdef int t, team
    with parallel(num_threads=team_size(total, n_threads)):
        t = threadid()
        team = omp_get_num_threads()
        # (assigned, not passed by address: Cython makes assigned variables thread-private)
        lo = thread_start(total, t, team)
        hi = thread_start(total, t + 1, team)
        for j in range(n_params):
            a = max(lo, offsets[j])
            b = min(hi, offsets[j + 1])
            if a < b:
                update_span(rule, is_double, addresses, j, a - offsets[j], b - a, hp)


def sgd_update(const intptr_t[:, ::1] addresses, const Py_ssize_t[::1] offsets, bint is_double,
               double lr, double momentum, double dampening, double weight_decay, bint nesterov,
               bint first_step, int n_threads):
    """One SGD step in place over a group of parameters (PyTorch's rule).

    Parameter j has ``offsets[j+1] - offsets[j]`` elements at address ``addresses[0, j]``,
    its gradient at ``addresses[1, j]`` and, with momentum, its momentum buffer at
    ``addresses[2, j]``; all float64 if ``is_double`` else float32.
    ``g = grad + weight_decay*param``; with momentum ``buf = g`` on the first step, else
    ``buf = momentum*buf + (1-dampening)*g``; the step uses ``g + momentum*buf`` (Nesterov)
    or ``buf``; ``param -= lr * step``.
    """
    cdef double hp[6]
    hp[0], hp[1], hp[2], hp[3] = lr, momentum, dampening, weight_decay
    hp[4], hp[5] = nesterov, first_step
    with nogil:
        run_update(SGD, is_double, addresses, offsets, hp, n_threads)


def adam_update(const intptr_t[:, ::1] addresses, const Py_ssize_t[::1] offsets,
                bint is_double, double lr, double beta1, double beta2, double eps,
                double weight_decay, bint decoupled, bint amsgrad, Py_ssize_t step,
                int n_threads):
    """One Adam (``decoupled`` False) or AdamW (True) step in place over a group of
    parameters (PyTorch's rules, bias-corrected; ``step`` counts from 1). ``addresses``
    rows: data, gradient, exp_avg, exp_avg_sq and, with ``amsgrad``, max_exp_avg_sq;
    offsets as in :func:`sgd_update`.

    AdamW first shrinks ``param *= 1 - lr*weight_decay``; Adam instead adds
    ``weight_decay*param`` to the gradient g. Then ``m = b1*m + (1-b1)*g``,
    ``v = b2*v + (1-b2)*g*g`` (amsgrad: ``vmax = max(vmax, v)``, used for v below),
    ``param -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``.
    """
    cdef double hp[8]
    hp[0] = lr / (1.0 - beta1 ** step)
    hp[1] = 1.0 / sqrt(1.0 - beta2 ** step)
    hp[2], hp[3], hp[4] = beta1, beta2, eps
    hp[5] = 0.0 if decoupled else weight_decay
    hp[6] = 1.0 - lr * weight_decay if decoupled else 1.0
    hp[7] = amsgrad
    with nogil:
        run_update(ADAM, is_double, addresses, offsets, hp, n_threads)
