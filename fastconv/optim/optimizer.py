"""The optimizer base class (parameter groups, state, ``state_dict``) and the compiled-update
plan every optimizer shares."""
from __future__ import annotations

import numbers
from typing import Any, Dict, Iterable, Union

import numpy as np

from .._parallel import get_num_threads
from .._validation import FLOAT_DTYPES
from ..nn.module import Parameter

#: What an optimizer takes: parameters, or parameter groups (dicts with "params" and
#: optional hyper-parameters), as torch.optim.
ParamsT = Union[Iterable[Parameter], Iterable[Dict[str, Any]]]


class _Required:
    """Marks a hyper-parameter without a default (SGD's ``lr``): every group must set it."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


def _check_float(value, name, minimum=0.0, maximum=None, inclusive_max=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value}")
    if maximum is not None and (value > maximum or (value == maximum and not inclusive_max)):
        raise ValueError(f"{name} must be {'<=' if inclusive_max else '<'} {maximum}, got {value}")
    return value


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


class Optimizer:
    """Base class, as ``torch.optim.Optimizer``: parameter groups, per-parameter state,
    ``step()`` from each parameter's ``.grad``, ``state_dict()`` / ``load_state_dict()``.

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict
        The parameters, or parameter groups: dicts with a ``"params"`` entry (a Parameter or
        an iterable of them) and any hyper-parameters that override ``defaults`` for that
        group (``[{"params": body, "lr": 1e-3}, {"params": head}]``).
    defaults : dict
        Each hyper-parameter's default.

    Attributes
    ----------
    param_groups : list of dict
        One dict per group: ``"params"`` (list of Parameter) and every hyper-parameter
        (``"lr"``, ``"momentum"``, ...). ``step()`` reads them on every call, so writing
        ``group["lr"]`` (what the schedulers of :mod:`fastconv.optim.lr_scheduler` do)
        takes effect at the next step.
    state : dict
        Parameter -> its state dict (``"momentum_buffer"``, ``"exp_avg"``, ...), created at
        the parameter's first step. Replace state arrays only through
        :meth:`load_state_dict` (the compiled update keeps their addresses).
    defaults : dict

    Notes
    -----
    Frozen parameters (``requires_grad=False``) are skipped by ``step()``: they keep their
    values and their state (momentum, moments, step count) is left untouched, as PyTorch
    skips parameters without a gradient.
    """

    # names of the state entries (all arrays except "step") and which ones are optional
    _state_keys: tuple[str, ...] = ()
    _optional_state_keys: tuple[str, ...] = ()
    param_groups: list[dict[str, Any]]
    state: dict[Parameter, dict[str, Any]]

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:  # params: ParamsT
        self.defaults = self._validate(dict(defaults), lambda key: key)
        self.param_groups = []
        self.state = {}
        self._plans: list[Any] = []
        if isinstance(params, (Parameter, dict)) or not _iterable(params):
            raise TypeError("params must be an iterable of Parameters or of dicts (parameter "
                            f"groups), got {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            for i, p in enumerate(params):
                if not isinstance(p, Parameter):
                    raise TypeError(f"params[{i}] must be a fastconv.nn.Parameter, got {type(p).__name__}")
            params = [{"params": params}]
        for i, group in enumerate(params):
            if not isinstance(group, dict):
                raise TypeError(f"params[{i}] must be a dict (parameter group) like params[0], "
                                f"got {type(group).__name__}")
            self.add_param_group(group)

    # ----------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (dict with ``"params"`` and optional hyper-parameters overriding
        ``defaults``), as ``torch.optim.Optimizer.add_param_group``."""
        where = f"param_groups[{len(self.param_groups)}]"
        if not isinstance(param_group, dict):
            raise TypeError(f"{where} must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{where} must have a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{where}['params'] must be an ordered sequence of Parameters (a set has "
                            "no order, so state_dict indices would not be reproducible)")
        elif _iterable(params):
            params = list(params)
        else:
            raise TypeError(f"{where}['params'] must be a Parameter or an iterable of them, "
                            f"got {type(params).__name__}")
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{where}['params'][{i}] must be a fastconv.nn.Parameter, got {type(p).__name__}")
        ids = {id(p) for p in params}
        if len(ids) != len(params):
            raise ValueError(f"{where}['params'] lists a parameter more than once")
        if any(id(p) in ids for g in self.param_groups for p in g["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        group = {k: v for k, v in param_group.items() if k != "params"}
        for key, default in self.defaults.items():
            if key not in group:
                if default is required:
                    raise ValueError(f"{where} must set '{key}' (the optimizer has no default for it)")
                group[key] = default
        group = self._validate(group, lambda key: f"{where}['{key}']" if key in param_group else key)
        group["params"] = params
        self.param_groups.append(group)
        self._plans.append(None)

    def _validate(self, hyper, name_of):
        """Checked and normalised copy of the hyper-parameters in ``hyper`` (the subclass's
        keys; others pass through); ``name_of(key)`` names a value in messages."""
        return hyper

    @property
    def params(self) -> list[Parameter]:
        """All parameters of all groups, in order."""
        return [p for g in self.param_groups for p in g["params"]]

    @property
    def lr(self) -> float:
        """The first parameter group's learning rate (``param_groups[0]["lr"]``); setting it
        changes that group only."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.param_groups[0]["lr"] = _check_float(value, "lr")

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero."""
        for g in self.param_groups:
            for p in g["params"]:
                p.grad[...] = 0

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])

    # ----------------------------------------------------------------- step
    def step(self) -> None:
        """Apply one update to every trainable parameter from its gradient."""
        n_threads = get_num_threads()
        for gi, group in enumerate(self.param_groups):
            params = group["params"]
            layout = self._layout(group)
            plan = self._plans[gi]
            if plan is None or not plan.matches(params, layout):
                plan = self._plans[gi] = self._build_plan(group, layout)
            for batch in plan.batches:
                self._compiled_step(group, batch.is_double, batch.addresses, batch.offsets,
                                    batch.phase, n_threads)
                batch.phase += 1
            for entry in plan.numpy_entries:
                i, phase = entry
                self._numpy_step(group, params[i], self.state[params[i]], phase)
                entry[1] = phase + 1
            self._after_step(plan)

    def _build_plan(self, group, layout):
        arrays: list[Any] = []
        phases: list[Any] = []
        states: list[Any] = []
        for p in group["params"]:
            if not p.requires_grad:
                arrays.append(())
                phases.append(None)
                continue
            st = self.state.get(p)
            if st is None:
                st = self.state[p] = {}
            phases.append(self._prepare_state(p, st, group))
            arrays.append(self._state_arrays(st, group))
            states.append(st)
        plan = _UpdatePlan(group["params"], arrays, phases, layout)
        plan.states = states
        return plan

    # hooks for the subclasses
    def _layout(self, group):
        """What the state arrays handed to the compiled loop depend on (hashable)."""
        return None

    def _prepare_state(self, p, state, group):
        """Create the missing entries of a trainable parameter's state; return its phase:
        the number of steps it has taken (all parameters of one compiled batch share it)."""
        raise NotImplementedError

    def _state_arrays(self, state, group):
        raise NotImplementedError

    def _compiled_step(self, group, is_double, addresses, offsets, phase, n_threads):
        raise NotImplementedError

    def _numpy_step(self, group, p, state, phase):
        raise NotImplementedError

    def _after_step(self, plan):
        """After a step: ``plan.states`` are the state dicts of the parameters it updated."""

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state, as ``torch.optim.Optimizer.state_dict``.

        Returns
        -------
        dict
            ``"state"``: {parameter index: {name: value}} for the parameters that have
            state (arrays are NumPy copies); ``"param_groups"``: one dict per group with its
            hyper-parameters and ``"params"``, the list of its parameters' indices (numbered
            across the groups in order).
        """
        groups, index, k = [], {}, 0
        for g in self.param_groups:
            packed = {key: value for key, value in g.items() if key != "params"}
            packed["params"] = list(range(k, k + len(g["params"])))
            for p in g["params"]:
                index[id(p)] = k
                k += 1
            groups.append(packed)
        state = {}
        for p, st in self.state.items():
            if id(p) in index and st:
                state[index[id(p)]] = {key: (v.copy() if isinstance(v, np.ndarray) else v)
                                       for key, v in st.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a :meth:`state_dict` (of an optimizer of the same kind over parameters of the
        same shapes, grouped the same way). Everything is checked before anything changes.

        Raises
        ------
        ValueError
            Naming what differs: the number of groups or of parameters in a group, an unknown
            parameter index, a state entry's keys, an array's shape, or a hyper-parameter.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise ValueError(f"state_dict must have a '{key}' entry")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not all(isinstance(g, dict) for g in saved_groups):
            raise TypeError("state_dict['param_groups'] must be a list of dicts")
        if not isinstance(saved_state, dict):
            raise TypeError("state_dict['state'] must be a dict")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(saved_groups)} parameter groups, "
                             f"the optimizer has {len(self.param_groups)}")
        mapping, groups = {}, []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            where = f"state_dict['param_groups'][{gi}]"
            indices = saved.get("params")
            if not isinstance(indices, (list, tuple)):
                raise ValueError(f"{where} must have a 'params' list of parameter indices")
            if len(indices) != len(group["params"]):
                raise ValueError(f"{where} has {len(indices)} parameters, the optimizer's group {gi} "
                                 f"has {len(group['params'])}")
            for i, p in zip(indices, group["params"]):
                if isinstance(i, bool) or not isinstance(i, numbers.Integral) or int(i) in mapping:
                    raise ValueError(f"{where}['params'] must list distinct int indices, got {i!r}")
                mapping[int(i)] = p
            hyper = {k: v for k, v in saved.items() if k != "params"}
            missing = sorted(set(self.defaults) - set(hyper))
            if missing:
                raise ValueError(f"{where} lacks the hyper-parameters {missing}")
            hyper = self._validate(hyper, lambda key, where=where: f"{where}['{key}']")
            hyper["params"] = group["params"]
            groups.append(hyper)
        state = {}
        for i, entry in saved_state.items():
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or int(i) not in mapping:
                raise ValueError(f"state_dict['state'] has an entry for parameter {i!r}, "
                                 f"which no parameter group lists")
            p = mapping[int(i)]
            state[p] = self._load_state_entry(p, entry, f"state_dict['state'][{i}]")
        for gi, group in enumerate(groups):
            self.param_groups[gi].clear()
            self.param_groups[gi].update(group)
        self.state = state
        self._plans = [None] * len(self.param_groups)

    def _load_state_entry(self, p, entry, where):
        """A checked copy of one parameter's saved state."""
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be a dict, got {type(entry).__name__}")
        keys = set(entry)
        required_keys = set(self._state_keys) - set(self._optional_state_keys)
        if not required_keys <= keys or not keys <= set(self._state_keys):
            raise ValueError(f"{where} has keys {sorted(keys)}, expected {sorted(required_keys)}"
                             + (f" and optionally {sorted(self._optional_state_keys)}"
                                if self._optional_state_keys else ""))
        out: dict[str, Any] = {}
        for key, value in entry.items():
            if key == "step":
                step = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else -1
                if step < 0 or step != int(step):
                    raise ValueError(f"{where}['step'] must be a non-negative int, got {value!r}")
                out[key] = int(step)
            elif value is None:
                out[key] = None
            else:
                a = np.asarray(value)
                if a.shape != p.data.shape:
                    raise ValueError(f"{where}['{key}'] has shape {a.shape}, the parameter has shape "
                                     f"{p.data.shape}")
                if a.dtype.kind not in "fiu":
                    raise ValueError(f"{where}['{key}'] must be a real array, got dtype {a.dtype}")
                out[key] = np.array(a, dtype=p.data.dtype, order="C", copy=True)
        return out


def _iterable(obj):
    try:
        iter(obj)
    except TypeError:
        return False
    return not isinstance(obj, (str, bytes, np.ndarray))


class _Batch:
    """The parameters of one group that one compiled call updates: one dtype, one phase."""

    __slots__ = ("is_double", "addresses", "offsets", "phase")

    def __init__(self, is_double, addresses, offsets, phase):
        self.is_double, self.addresses, self.offsets, self.phase = is_double, addresses, offsets, phase


class _UpdatePlan:
    """What one compiled update call per (dtype, phase) needs: the addresses of every
    parameter's data, gradient and state arrays, and their element offsets laid end to end.

    It holds references to those arrays, so the addresses stay valid while it exists;
    :meth:`matches` tells whether the parameters still use the same (writeable) arrays.
    Parameters the compiled loop cannot take (not C-contiguous, mixed dtypes, read-only)
    are listed in ``numpy_entries`` ([index, phase]) for the NumPy rule. A phase counts a
    parameter's steps; the optimizer advances it after each step. The parameters of a batch
    start with one phase and always step together, so they keep sharing it.
    """

    states: list[Any]  # set by Optimizer._build_plan

    def __init__(self, params: list[Parameter], states: list[Any], phases: list[Any], layout: Any) -> None:
        self.arrays = [(p.data, p.grad) + tuple(st) for p, st in zip(params, states)]
        self.trainable = [p.requires_grad for p in params]
        self.layout = layout
        by_key: dict[Any, list[int]] = {}
        self.numpy_entries = []
        for i, arrays in enumerate(self.arrays):
            if not self.trainable[i]:
                continue
            if _fusable(*arrays):
                by_key.setdefault((arrays[0].dtype, phases[i]), []).append(i)
            else:
                self.numpy_entries.append([i, phases[i]])
        self.batches = []
        for (dtype, phase), members in by_key.items():
            # addresses[k, j]: array k (data, grad, state...) of the batch's parameter j
            addresses = np.array([[a.ctypes.data for a in self.arrays[i]] for i in members],
                                 np.intp).T.copy()
            offsets: Any = np.zeros(len(members) + 1, np.intp)
            offsets[1:] = np.cumsum([self.arrays[i][0].size for i in members])
            self.batches.append(_Batch(dtype == np.float64, addresses, offsets, phase))

    def matches(self, params, layout):
        return layout == self.layout and len(params) == len(self.arrays) and all(
            p.data is arrays[0] and p.grad is arrays[1] and arrays[0].flags.writeable
            and p.requires_grad == trainable
            for p, arrays, trainable in zip(params, self.arrays, self.trainable))


def _fusable(data, *others):
    """True when the compiled update applies to a parameter's arrays (data first, then its
    gradient and state): float32/float64, one dtype and shape, all C-contiguous, data and
    state writeable.

    Anything else (a parameter a user replaced by a strided view, say) takes the NumPy
    path, which gives the same result more slowly.
    """
    return data.dtype in FLOAT_DTYPES and data.flags.writeable and all(
        a.dtype == data.dtype and a.shape == data.shape and a.flags.c_contiguous
        for a in (data,) + others) and all(a.flags.writeable for a in others[1:])
