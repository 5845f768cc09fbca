/* The element loops of the fused optimizer updates (_optim.pyx), one span of one
 * parameter at a time, compiled for AVX-512 / AVX2 / baseline (FC_MULTIVERSION): the
 * baseline SSE2 loop was issue-bound at ~3 cycles an element (35 us a LeNet-5 step).
 *
 * The options are turned into arithmetic so the loops have no branches and vectorise;
 * restrict: a parameter, its gradient and its state are distinct arrays.
 */
#ifndef FASTCONV_OPTIM_SPANS_H
#define FASTCONV_OPTIM_SPANS_H
#include <math.h>
#include <stddef.h>
#include "_multiversion.h"

/* g = grad + wd*param; buf = keep*mu*buf + damp*g; param -= lr*(look*(g + mu*buf) + (1-look)*buf),
 * keep = 0 and damp = 1 on the first step (buf = g), else keep = 1 and damp = 1 - dampening;
 * look = 1 for Nesterov; without momentum buf is not touched. */
#define FC_DEFINE_SGD_SPAN(NAME, T)                                                            \
    FC_MULTIVERSION static void NAME(T* restrict param, const T* restrict grad,                \
                                     T* restrict buf, ptrdiff_t n, double lr, double momentum, \
                                     double dampening, double weight_decay, int nesterov,     \
                                     int first_step)                                          \
    {                                                                                          \
        const T flr = (T)lr, mu = (T)momentum, wd = (T)weight_decay;                          \
        const T keep = first_step ? (T)0 : (T)1, look = nesterov ? (T)1 : (T)0;               \
        const T damp = first_step ? (T)1 : (T)(1.0 - dampening);                              \
        if (momentum == 0) {                                                                   \
            for (ptrdiff_t i = 0; i < n; ++i)                                                  \
                param[i] = param[i] - flr * (grad[i] + wd * param[i]);                         \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t i = 0; i < n; ++i) {                                                    \
            const T g = grad[i] + wd * param[i];                                               \
            const T b = keep * mu * buf[i] + damp * g;                                         \
            buf[i] = b;                                                                        \
            param[i] = param[i] - flr * (look * (g + mu * b) + ((T)1 - look) * b);             \
        }                                                                                      \
    }

/* Adam / AdamW, PyTorch's rule:
 *   p *= shrink (AdamW: shrink = 1 - lr*decoupled_wd; Adam: 1, which leaves p exact);
 *   g = grad + wd*p (coupled L2, Adam only); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
 *   amsgrad: vmax = max(vmax, v) and the denominator uses vmax instead of v;
 *   p -= step_size*m/(sqrt(v)*inv_sqrt_c2 + eps).
 * max_exp_avg_sq NULL: no amsgrad (the branch is outside the loops). */
#define FC_DEFINE_ADAM_SPAN(NAME, T, SQRT)                                                     \
    FC_MULTIVERSION static void NAME(T* restrict param, const T* restrict grad,                \
                                     T* restrict exp_avg, T* restrict exp_avg_sq,              \
                                     T* restrict max_exp_avg_sq, ptrdiff_t n,                  \
                                     double step_size, double inv_sqrt_c2, double beta1,      \
                                     double beta2, double eps, double weight_decay,           \
                                     double shrink)                                           \
    {                                                                                          \
        const T s = (T)step_size, r = (T)inv_sqrt_c2, b1 = (T)beta1, b2 = (T)beta2;           \
        const T e = (T)eps, wd = (T)weight_decay, k = (T)shrink;                               \
        const T c1 = (T)(1.0 - beta1), c2 = (T)(1.0 - beta2);                                 \
        if (max_exp_avg_sq == NULL) {                                                          \
            for (ptrdiff_t i = 0; i < n; ++i) {                                                \
                const T p = param[i] * k;                                                      \
                const T g = grad[i] + wd * p;                                                  \
                const T m = b1 * exp_avg[i] + c1 * g;                                          \
                const T v = b2 * exp_avg_sq[i] + c2 * g * g;                                   \
                exp_avg[i] = m;                                                                \
                exp_avg_sq[i] = v;                                                             \
                param[i] = p - s * m / (SQRT(v) * r + e);                                      \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t i = 0; i < n; ++i) {                                                    \
            const T p = param[i] * k;                                                          \
            const T g = grad[i] + wd * p;                                                      \
            const T m = b1 * exp_avg[i] + c1 * g;                                              \
            const T v = b2 * exp_avg_sq[i] + c2 * g * g;                                       \
            const T vm = max_exp_avg_sq[i] > v ? max_exp_avg_sq[i] : v;                        \
            exp_avg[i] = m;                                                                    \
            exp_avg_sq[i] = v;                                                                 \
            max_exp_avg_sq[i] = vm;                                                            \
            param[i] = p - s * m / (SQRT(vm) * r + e);                                         \
        }                                                                                      \
    }

FC_DEFINE_SGD_SPAN(fc_sgd_span_f, float)
FC_DEFINE_SGD_SPAN(fc_sgd_span_d, double)
FC_DEFINE_ADAM_SPAN(fc_adam_span_f, float, sqrtf)
FC_DEFINE_ADAM_SPAN(fc_adam_span_d, double, sqrt)

#endif
