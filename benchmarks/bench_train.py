"""Training throughput and generator cost of each variant on this machine.

    python benchmarks/bench_train.py [--params params.yaml] [--iterations 20] [--threads 1]

For every variant in the params file: parameters and forward GFLOPs per image of the
generator (at the params' size and at the paper's 128 px / base 64 / 6 blocks), and the
images per second through one full training iteration (critic step every iteration, the
generator step amortised over ``n_critic``), measured on random batches, and the generator
steps per second this gives, with the exact stem speed-up (``dftnet.blocks.conv_over_tiled_aus``)
and with the plain convolution over the tiled AUs it replaces ("before"). Prints one line
per variant (stdout); not a test, since timings depend on the machine and its load.
"""

import argparse
import contextlib
import time

import torch

from dftnet import blocks

from dftnet.config import load_params, resolve_variant
from dftnet.generators import at_paper_size, generator_cost
from dftnet.train import build_state, critic_terms, generator_terms, weighted_total


def images_per_second(run, iterations: int) -> float:
    state = build_state(run, torch.device("cpu"))
    t, bs, size = run.train, run.train.batch_size, run.image_size
    x = torch.rand(bs, 3, size, size) * 2 - 1
    y_s, y_t = torch.rand(bs, 17), torch.rand(bs, 17)

    def iteration(k: int) -> None:
        weighted_total(critic_terms(state, x, y_s, y_t, t.lambdas), t.lambdas, bs).backward()
        if (k + 1) % t.n_critic == 0:
            weighted_total(generator_terms(state, x, y_s, y_t, t.lambdas), t.lambdas, bs).backward()

    for k in range(t.n_critic):  # warm-up: one generator step included
        iteration(k)
    start = time.perf_counter()
    for k in range(iterations):
        iteration(k)
    return iterations * bs / (time.perf_counter() - start)


@contextlib.contextmanager
def plain_stem():
    """The computation the speed-up replaces: the stem convolves the 3 + 17 tiled channels."""
    fast = blocks.conv_over_tiled_aus
    blocks.conv_over_tiled_aus = lambda conv, x, aus: conv(blocks.tile_aus(x, aus))
    try:
        yield
    finally:
        blocks.conv_over_tiled_aus = fast


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    print(f"settings: {params.data.image_size} px, batch {params.train.batch_size}, n_critic {params.train.n_critic}, "
          f"threads {args.threads}, torch {torch.__version__}")
    for name in params.variants:
        run = resolve_variant(params, name, params.seeds[0])
        here = generator_cost(run.model, run.image_size)
        paper = generator_cost(*at_paper_size(run.model))
        with plain_stem():
            before = images_per_second(run, args.iterations)
        ips = images_per_second(run, args.iterations)
        per_step = run.train.batch_size * run.train.n_critic  # images through the critic per generator step
        print(f"{name:12s} train {ips:7.1f} img/s = {ips / per_step:5.2f} G steps/s (plain stem: {before / per_step:5.2f})"
              f" | here {here['params']:>9,} params {here['gflops']:.3f} GFLOPs/img"
              f" | paper scale {paper['params']:>10,} params {paper['gflops']:.2f} GFLOPs/img")


if __name__ == "__main__":
    main()
