"""Faces per second of the synthetic renderer (``dftnet.data.synth.render``) on this machine's CPU.

    python benchmarks/bench_synth.py [--size 128] [--batch 64] [--threads 2] [--seconds 5]

Prints the settings and the figure on one line each (stdout); not a test, since timings
depend on the machine and on whatever else runs on it.
"""

import argparse
import time

import torch

from dftnet.data.synth import sample_expressions, sample_identities, render


def faces_per_second(size: int, batch: int, seconds: float) -> tuple[float, float]:
    """Best and mean throughput over ``seconds`` of rendering ``batch`` faces per call."""
    ident = sample_identities(batch, seed=0)
    aus = sample_expressions(batch, torch.Generator().manual_seed(0))
    render(ident, aus, size)  # warm-up
    best, calls, start = 0.0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        render(ident, aus, size)
        best, calls = max(best, batch / (time.perf_counter() - t)), calls + 1
    return best, calls * batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128, help="square image side in px")
    ap.add_argument("--batch", type=int, default=64, help="faces per render() call")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--seconds", type=float, default=5.0, help="time spent measuring")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"settings: size={args.size} batch={args.batch} threads={args.threads} dtype=float32 "
          f"torch={torch.__version__} measured for {args.seconds:g} s")
    best, mean = faces_per_second(args.size, args.batch, args.seconds)
    print(f"faces/s: {best:.0f} (best call), {mean:.0f} (mean)")


if __name__ == "__main__":
    main()
