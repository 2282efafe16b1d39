"""Inference timing of a generator: one forward pass plus its composition (no cycle pass).

Eval mode, ``torch.inference_mode``, fixed random inputs (seeded), untimed warm-up, median and
inter-quartile range over the runs. On the CPU each pass is timed by the wall clock; on CUDA
by CUDA events recorded around it on the device's stream (kernel time, without the host's
launch jitter after the pass), and, with ``graphs=True``, the pass is captured once in a CUDA
graph after warm-up and each timed pass is a replay (no per-kernel launch cost: what batch-1
latency can reach). The fast path (:mod:`dftnet.nets.accel`: bf16 autocast, channels_last) applies
as in training; the protocol records it.
``time_generators`` interleaves several generators run by run in one process, so that a
ratio (DFT-Net / GANimation) is not skewed by drift in clock speed or load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import time
from importlib.metadata import version

import numpy as np
import torch

from dftnet.nets import accel
from dftnet.nets.accel import Fast
from dftnet.nets.blocks import eval_mode
from dftnet.data.aus import N_AUS


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str | torch.device, dtype: torch.dtype = torch.float32) -> dict:
    return {"device": str(torch.device(device)), "device_name": device_name(device), "dtype": str(dtype).replace("torch.", ""),
            "torch": torch.__version__, "torchvision": version("torchvision"), "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "platform": platform.platform()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _inputs(batch_size: int, image_size: int, device: torch.device, dtype: torch.dtype, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch_size, 3, image_size, image_size, generator=g) * 2 - 1
    aus = torch.rand(batch_size, N_AUS, generator=g)
    return x.to(device, dtype), aus.to(device, dtype)


@contextlib.contextmanager
def _memory_format(fast: Fast, gens):
    """The generators in the fast path's memory format for the timing, contiguous again after."""
    if not fast.channels_last:
        yield
        return
    for gen in gens:
        gen.to(memory_format=accel.memory_format(fast))
    try:
        yield
    finally:
        for gen in gens:
            gen.to(memory_format=torch.contiguous_format)


def _summary(ms: list[float], batch_size: int) -> dict:
    q1, med, q3 = np.percentile(np.asarray(ms), [25, 50, 75])
    return {"batch_size": batch_size, "runs": len(ms), "ms_per_batch": [float(t) for t in ms],
            "ms_per_batch_median": float(med),
            "ms_per_batch_q1": float(q1), "ms_per_batch_q3": float(q3), "ms_per_batch_iqr": float(q3 - q1),
            "ms_per_image_median": float(med) / batch_size, "ms_per_image_iqr": float(q3 - q1) / batch_size}


def _pass(gen, x: torch.Tensor, aus: torch.Tensor, fast: Fast, device: torch.device, graphs: bool, warmup: int):
    """One inference pass of ``gen`` as a callable: eager under the fast path's autocast, or
    (``graphs``, CUDA only) the replay of a CUDA graph captured after ``warmup`` eager passes
    on a side stream (autocast's weight cache off: a captured cast must not be reused stale)."""
    def eager():
        with accel.autocast(fast, device):
            return gen(x, aus).image

    if not graphs:
        return eager
    if device.type != "cuda":
        raise ValueError("CUDA graphs need a CUDA device")
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(max(warmup, 3)):
            eager()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.autocast("cuda", torch.bfloat16, enabled=fast.precision == "bf16",
                                                  cache_enabled=False):
        _ = gen(x, aus).image  # captured, replayed by graph.replay
    return graph.replay


def _timed_ms(fn, device: torch.device) -> float:
    """Milliseconds of one call: CUDA events on the device's stream, else the wall clock."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


@torch.inference_mode()
def time_generators(gens: dict, image_size: int, batch_sizes=(1, 64), runs: int = 50, warmup: int = 5,
                    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0,
                    fast: Fast = Fast(), graphs: bool = False) -> dict:
    """Median/IQR latency of each generator per batch size, the generators interleaved.

    ``fast``: the fast path's precision and memory format (:mod:`dftnet.nets.accel`; its ``compile``
    is a training option: timing runs eager, and says so); ``graphs``: time CUDA-graph replays
    (CUDA only). Returns ``{"models": {name: {"b{bs}": {...}}},
    "ratios": {"a/b": {"b{bs}": median ratio}}, "environment": {...}, "protocol": {...}}``.
    Training modes and memory formats are restored afterwards.
    """
    device, fast = torch.device(device), dataclasses.replace(fast, compile=False)
    for name, gen in gens.items():
        p = next(gen.parameters(), None)
        if p is not None and (p.dtype != dtype or p.device.type != device.type):
            raise ValueError(f"time_generators: {name} has {p.dtype} parameters on {p.device}, expected {dtype} on {device}")
    models: dict = {name: {} for name in gens}
    with eval_mode(*gens.values()), _memory_format(fast, gens.values()):
        for bs in batch_sizes:
            x, aus = _inputs(bs, image_size, device, dtype, seed)
            x = accel.images(fast, x)
            passes = {name: _pass(gen, x, aus, fast, device, graphs, warmup) for name, gen in gens.items()}
            for _ in range(warmup):
                for fn in passes.values():
                    fn()
            _sync(device)
            times: dict[str, list[float]] = {name: [] for name in gens}
            for _ in range(runs):
                for name, fn in passes.items():
                    _sync(device)
                    times[name].append(_timed_ms(fn, device))
            for name in gens:
                models[name][f"b{bs}"] = _summary(times[name], bs)
            del passes  # a captured graph holds its memory pool until released
    names = list(gens)
    ratios = {f"{a}/{b}": {k: models[a][k]["ms_per_batch_median"] / models[b][k]["ms_per_batch_median"] for k in models[a]}
              for a in names for b in names if a != b}
    timer = "CUDA events around each pass" if device.type == "cuda" else "wall clock (perf_counter) around each pass"
    return {"models": models, "ratios": ratios, "environment": environment(device, dtype),
            "protocol": {"pass": "one generator forward incl. composition, no cycle pass", "mode": "eval + inference_mode",
                         "timer": timer, "cuda_graphs": graphs, "fast_path": fast.to_dict(),
                         "warmup": warmup, "runs": runs, "image_size": image_size, "interleaved": len(gens) > 1,
                         "statistic": "median and inter-quartile range of wall time per pass", "input_seed": seed,
                         "ms_per_batch": "every timed pass in order; pass i of each model ran in the same "
                                         "round (paired, for the bootstrap of a difference)"}}


def time_generator(gen, image_size: int, batch_sizes=(1, 64), runs: int = 50, warmup: int = 5,
                   device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0,
                   fast: Fast = Fast(), graphs: bool = False) -> dict:
    """Timing of one generator: ``{"b{bs}": {...}, "environment": {...}, "protocol": {...}}``."""
    out = time_generators({"model": gen}, image_size, batch_sizes, runs, warmup, device, dtype, seed, fast, graphs)
    return {**out["models"]["model"], "environment": out["environment"], "protocol": out["protocol"]}
