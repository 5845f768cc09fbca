"""Adam, as ``torch.optim.Adam``."""
import numpy as np

from .._kernels import _optim
from .._parallel import get_num_threads
from .optimizer import Optimizer, _check_float


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba), as ``torch.optim.Adam``.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0 (L2 penalty added to the gradient)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        self.lr = _check_float(lr, "lr")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of floats in [0, 1), got {betas!r}")
        self.betas = (_check_float(betas[0], "betas[0]", 0.0, 1.0), _check_float(betas[1], "betas[1]", 0.0, 1.0))
        self.eps = _check_float(eps, "eps")
        self.weight_decay = _check_float(weight_decay, "weight_decay")
        self._m = [np.zeros_like(p.data) for p in self.params]
        self._v = [np.zeros_like(p.data) for p in self.params]
        self.t = 0

    def step(self):
        """Apply one Adam update to every parameter from its gradient."""
        self.t += 1
        b1, b2 = self.betas
        plan = self._compiled_plan(list(zip(self._m, self._v)))
        n_threads = get_num_threads()
        for is_double, addresses, offsets in plan.groups:
            _optim.adam_update(addresses, offsets, is_double, self.lr, b1, b2, self.eps,
                               self.weight_decay, self.t, n_threads)
        c1 = 1 - b1**self.t
        c2 = 1 - b2**self.t
        for i in plan.numpy_indices:
            p, m, v = self.params[i], self._m[i], self._v[i]
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v) / np.sqrt(c2) + self.eps
            p.data -= (self.lr / c1) * m / denom
