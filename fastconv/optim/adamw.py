"""AdamW (decoupled weight decay), as ``torch.optim.AdamW``."""
from .adam import Adam
from .optimizer import ParamsT


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``:
    each step first shrinks ``p *= 1 - lr * weight_decay``, then applies the Adam update to
    the plain gradient (no L2 term in it).

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict (parameter groups)
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 1e-2
    amsgrad : bool, default False

    Notes
    -----
    One compiled update with :class:`Adam` (its ``decoupled_weight_decay`` flag); the
    groups carry ``decoupled_weight_decay=True``, as PyTorch's AdamW's do.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, decoupled_weight_decay=True)
