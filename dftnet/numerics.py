"""What makes a number reproducible: the thread count, deterministic kernels, and a record of both.

Float sums split over threads round differently, so the intra-op thread count is part of a
result (the AU judge trained on 1 vs 2 threads differs in its third decimal). It is therefore
a param (``compute.threads``, ``compute.train_threads``), never the machine's core count.
What cannot be pinned from here (the CPU's vector instruction set, the library versions) is
recorded with every metric by :func:`record`.
"""

from __future__ import annotations

import torch

from dftnet.errors import ConfigError


def pin(threads: int, deterministic: bool = True) -> None:
    """Fix this process's intra-op threads and, on a CPU-only process, deterministic kernels.

    On CUDA deterministic mode stays off: ``grid_sample``'s backward (the warp) has no
    deterministic CUDA kernel, so GPU runs are not bit-reproducible; :func:`record` says so.
    """
    torch.set_num_threads(int(threads))
    torch.use_deterministic_algorithms(bool(deterministic) and not torch.cuda.is_available())


def record() -> dict:
    """The numerics this process runs under, for a metric's protocol."""
    cuda = torch.cuda.is_available()
    return {"threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__,
            "not_pinned": ("CUDA kernels (grid_sample backward is non-deterministic), cuDNN autotuning"
                           if cuda else "the CPU's instruction set (recorded as cpu_capability) and library versions")}


def pick_device(name: str | None = None) -> torch.device:
    """CUDA where present, else CPU; an explicit name wins, if this machine has it."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device: {name!r} is not a device (expected cpu, cuda or cuda:<index>)") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"--device: {name!r} is not available on this machine "
                          f"({torch.cuda.device_count()} CUDA devices); use cpu")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device: {name!r} is not supported (expected cpu or cuda)")
    return device
