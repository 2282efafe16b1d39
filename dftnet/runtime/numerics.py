"""What makes a number reproducible: the thread count, deterministic kernels, and a record of both.

Float sums split over threads round differently, so the intra-op thread count is part of a
result (the AU judge trained on 1 vs 2 threads differs in its third decimal). It is therefore
a param (``compute.threads``, ``compute.train_threads``), never the machine's core count.
What cannot be pinned from here (the CPU's vector instruction set, the library versions) is
recorded with every metric by :func:`record`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch

from dftnet.runtime.errors import ConfigError


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


# --------------------------------------------------------------- one GPU per run
_HELD: dict[int, int] = {}  # GPU index -> file descriptor of its lock, held by this process until it exits


def lock_dir() -> Path:
    """Where the GPU locks of this machine live: ``$DFTNET_LOCK_DIR``, else a per-user temp folder."""
    return Path(os.environ.get("DFTNET_LOCK_DIR") or Path(tempfile.gettempdir()) / f"dftnet-gpus-{os.getuid()}")


def claim_gpu(count: int, where: str | Path | None = None) -> int:
    """The index of a GPU no other process on this machine has claimed, now claimed by this one;
    a process claims one GPU and keeps it (a worker training several seeds in turn reuses it).

    Each GPU ``i`` has a lock file ``cuda<i>.lock`` in :func:`lock_dir`; a claim is an exclusive
    ``flock`` held on an open file until the process exits (the kernel releases it however the
    process ends, so a killed run frees its GPU). The first free GPU is taken; when all are
    held, the process waits for one (``pid % count``), saying so once. This is what pins each
    seed trained in parallel, and each experiment of ``dvc queue start -j N``, to its own GPU.
    """
    import fcntl

    if _HELD:
        return next(iter(_HELD))
    folder = Path(where) if where is not None else lock_dir()
    folder.mkdir(parents=True, exist_ok=True)

    def open_lock(i: int) -> int:
        return os.open(folder / f"cuda{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)

    for i in range(count):
        fd = open_lock(i)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _HELD[i] = fd
        return i
    i = os.getpid() % count
    print(f"all {count} GPUs are in use by other runs ({folder}); waiting for cuda:{i}", file=sys.stderr)
    fd = open_lock(i)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _HELD[i] = fd
    return i


def place(device: torch.device) -> torch.device:
    """An unindexed ``cuda`` on a machine with several GPUs becomes a claimed one
    (:func:`claim_gpu`); any other device (the CPU, an explicit ``cuda:<k>``) is kept."""
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        device = torch.device("cuda", claim_gpu(torch.cuda.device_count()))
    return device
