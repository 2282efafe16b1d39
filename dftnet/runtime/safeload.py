"""Loading saved tensors from files we did not necessarily write: safely, and fully checked.

Every checkpoint and judge file goes through here. ``torch.load(weights_only=True)`` refuses
anything but tensors and plain containers, so a malicious file executes nothing; the contents
are then checked against the network they are loaded into (every weight present, none extra,
every shape right, every value finite), so a foreign file, a truncated one or a diverged run's
NaN weights stop with one line naming the file, never a traceback or a silently wrong number.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from dftnet.runtime.errors import DataError, first_line


def load_file(path: str | Path, what: str) -> dict:
    """The mapping saved in ``path`` (tensors and plain containers only)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's advice on foreign pickles would spill onto stderr
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except Exception as err:  # refused unpickling, truncation, not a zip archive ...
        raise DataError(f"{path}: not a loadable {what} ({type(err).__name__}: {first_line(err)})") from None
    if not isinstance(state, dict):
        raise DataError(f"{path}: not a {what} (holds a {type(state).__name__}, expected a mapping)")
    return state


def require(state: dict, keys, path: str | Path, what: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise DataError(f"{path}: not a {what} (no {missing[0]!r} entry)")


def load_weights(module: nn.Module, weights, path: str | Path, what: str) -> None:
    """``module.load_state_dict(weights)`` after checking names, shapes and finiteness."""
    if not isinstance(weights, dict):
        raise DataError(f"{path}: {what} weights are a {type(weights).__name__}, expected a state dict")
    expected = module.state_dict()
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    if missing or extra:
        name, kind = (missing[0], "missing") if missing else (extra[0], "unexpected")
        raise DataError(f"{path}: {what} weights do not fit this network ({kind} {name!r}; "
                        f"{len(missing)} missing, {len(extra)} unexpected)")
    for key, ref in expected.items():
        got = weights[key]
        if not isinstance(got, torch.Tensor) or got.shape != ref.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise DataError(f"{path}: {what} weight {key!r} has shape {shape}, expected {tuple(ref.shape)}")
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise DataError(f"{path}: {what} weight {key!r} holds NaN or inf (a diverged run): refusing to use it")
    module.load_state_dict(weights)
