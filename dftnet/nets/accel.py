"""The fast path: numeric precision, memory format and compilation of the networks, per device.

Three params of ``compute`` (:class:`dftnet.config.ComputeConfig`), each ``auto`` by default:

==================  ===========================  ================  ===============================
param               auto on CUDA                 auto on the CPU   other values
==================  ===========================  ================  ===============================
``precision``       ``bf16`` autocast            ``fp32``          ``fp32`` (paper-faithful), ``bf16``
``channels_last``   ``enabled``                  ``disabled``      ``enabled``, ``disabled``
``compile``         ``enabled`` (generator)      ``disabled``      ``enabled``, ``disabled``
==================  ===========================  ================  ===============================

* **Precision.** ``bf16`` runs the networks under ``torch.autocast``; every loss term is still
  reduced in fp32 (:mod:`dftnet.nets.losses`) and the warp samples in fp32 (:func:`dftnet.nets.models.f`).
  The gradient penalty's critic pass and double backward run under autocast too, or in fp32
  with ``compute.penalty_precision: fp32`` (:func:`penalty_precision`).
  ``benchmarks/bench_precision.py`` measures both against fp32: on a trained critic the
  penalty alone in bf16 is off by 0.4% and moves the critic's gradient by 1% (relative L2),
  while a whole bf16 critic step moves it by 2.4% with the penalty in bf16 or in fp32 alike,
  so fp32 for the penalty buys little for the cost of its most expensive pass
  (docs/scaling.md). Weights and optimiser state stay fp32.
* **channels_last** stores images and convolution weights NHWC, the layout tensor cores and
  cuDNN's fastest kernels want; values are the same up to the kernels' summation order.
* **compile** wraps the generator's forward in ``torch.compile`` (in place, so its
  ``state_dict`` keys, hence checkpoints, do not change). The critic stays eager: the
  gradient penalty differentiates through its backward, and compiled graphs do not support
  double backward.

What a run used is recorded in its ``train_summary.json`` (:meth:`Fast.to_dict`), and a run
resumes only with the precision it started with.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16")
SWITCHES = ("auto", "enabled", "disabled")
PENALTY_PRECISIONS = ("fp32", "autocast")


@dataclass(frozen=True)
class Fast:
    """The fast-path choices of one process, resolved for its device."""

    precision: str = "fp32"       # "fp32" | "bf16" (autocast)
    gp_fp32: bool = False         # under bf16: the gradient penalty's pass in fp32 (penalty_precision)
    channels_last: bool = False
    compile: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _switch(value: str, cuda: bool) -> bool:
    return cuda if value == "auto" else value == "enabled"


def resolve(compute, device: torch.device) -> Fast:
    """``compute`` (a ComputeConfig) resolved for ``device``: ``auto`` is the fast path on CUDA,
    the plain fp32 eager path on the CPU (whose default results it must not change)."""
    cuda = torch.device(device).type == "cuda"
    precision = compute.precision if compute.precision != "auto" else ("bf16" if cuda else "fp32")
    return Fast(precision=precision, gp_fp32=compute.penalty_precision == "fp32",
                channels_last=_switch(compute.channels_last, cuda), compile=_switch(compute.compile, cuda))


def autocast(fast: Fast, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast region the networks run in (a no-op for fp32)."""
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=fast.precision == "bf16")


def penalty_precision(fast: Fast, device: torch.device) -> contextlib.AbstractContextManager:
    """Around the gradient penalty: fp32 (autocast off) when ``fast.gp_fp32``, else unchanged."""
    if fast.precision == "bf16" and fast.gp_fp32:
        return torch.autocast(device_type=torch.device(device).type, enabled=False)
    return contextlib.nullcontext()


def memory_format(fast: Fast) -> torch.memory_format:
    return torch.channels_last if fast.channels_last else torch.contiguous_format


def prepare_networks(fast: Fast, G: nn.Module, D: nn.Module) -> None:
    """In place: the memory format of both networks, and the generator compiled if asked."""
    for module in (G, D):
        module.to(memory_format=memory_format(fast))
    if fast.compile:
        G.compile()


def images(fast: Fast, x: torch.Tensor) -> torch.Tensor:
    """A batch of images in the networks' memory format (unchanged when contiguous is asked)."""
    return x.contiguous(memory_format=torch.channels_last) if fast.channels_last else x
