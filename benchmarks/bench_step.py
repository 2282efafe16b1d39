"""Where one training iteration's time goes, per variant, on this machine.

    python benchmarks/bench_step.py [--params params.yaml] [--variants dftnet ganimation] [--iterations 20]

On random batches at the params' size, batch and lambdas (one thread): the critic step without
the gradient penalty, the penalty's extra cost, the generator step (edit, critic's reading,
cycle pass, regularisers, backward and optimiser step), and the learning curve (the judge
reading ``train.curve_pairs`` validation edits every ``train.curve_every`` steps, amortised per
step, with a stand-in judge of the real one's size). Prints ms per iteration and shares (stdout);
not a test: timings depend on the machine and its load.
"""

import argparse
import dataclasses
import time

import torch

from dftnet.training import train as trainer
from dftnet.config import load_params, resolve_variant
from dftnet.eval.judge import AUJudge


def ms(fn, n: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return 1000 * (time.perf_counter() - start) / n


def profile(params, variant: str, iterations: int) -> None:
    run = resolve_variant(params, variant, 0)
    t, size = run.train, run.image_size
    state = trainer.build_state(run, torch.device("cpu"))
    x = torch.rand(t.batch_size, 3, size, size) * 2 - 1
    y_s, y_t = torch.rand(t.batch_size, 17), torch.rand(t.batch_size, 17)
    no_gp = dataclasses.replace(t.lambdas, gp=0.0)

    def critic(lam):
        def step():
            state.opt_D.zero_grad(set_to_none=True)
            trainer.weighted_total(trainer.critic_terms(state, x, y_s, y_t, lam), lam, t.batch_size).backward()
            state.opt_D.step()
        return step

    def generator():
        state.opt_G.zero_grad(set_to_none=True)
        terms = trainer.generator_terms(state, x, y_s, y_t, t.lambdas)
        trainer.weighted_total(terms, t.lambdas, t.batch_size).backward()
        state.opt_G.step()

    judge = AUJudge(params.judge.base_channels, size).eval()
    pairs = torch.rand(t.curve_pairs, 3, size, size) * 2 - 1

    def curve():
        with torch.no_grad():
            judge(state.G(pairs, torch.rand(t.curve_pairs, 17)).image)

    c0, c1 = ms(critic(no_gp), iterations), ms(critic(t.lambdas), iterations)
    g = ms(generator, iterations) / t.n_critic
    lc = ms(curve, 3) / t.curve_every if t.curve_every else 0.0
    total = c1 + g + lc
    parts = {"critic (no penalty)": c0, "gradient penalty": c1 - c0, "generator": g, "learning curve": lc}
    print(f"{variant}: {total:.1f} ms per iteration (batch {t.batch_size}, {size} px, 1 thread): "
          + ", ".join(f"{k} {v:.1f} ms ({100 * v / total:.0f}%)" for k, v in parts.items()))



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variants", nargs="*", default=["dftnet", "ganimation"])
    ap.add_argument("--iterations", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = load_params(args.params)
    for variant in args.variants:
        profile(params, variant, args.iterations)

if __name__ == "__main__":
    main()
