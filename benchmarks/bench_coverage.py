"""Coverage of the claims' 95% intervals on fabricated data shaped like the experiment.

    python benchmarks/bench_coverage.py [--reps 1000] [--bootstrap-reps 300]

Each draw: 3 seeds x 12 source people x 10 pairs, a true mean of 0.3, a real seed effect (not
centred), person and pair effects shared by every seed (all seeds edit the same pairs), and
seed-by-pair noise. Printed: how often each interval contains the truth, for the interval the
claims use (:func:`dftnet.eval.stats.crossed_t_interval`) and for the crossed percentile
bootstrap (:func:`dftnet.eval.stats.crossed_bootstrap`: seeds and people resampled, the pairs
shared by the drawn seeds). docs/verdicts.md quotes this table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dftnet.eval.stats import crossed_bootstrap, crossed_t_interval  # noqa: E402

TRUE = 0.3
# (seed sd, person sd, pair sd, seed-by-pair noise sd)
SCENARIOS = {
    "no seed effect": (0.0, 1.0, 1.0, 0.5),
    "small seed effect": (0.3, 1.0, 1.0, 0.5),
    "seed effect as large as the person effect": (1.0, 1.0, 1.0, 0.5),
    "seed effect dominates": (1.0, 0.2, 0.2, 0.5),
    "independent pairs, no person or seed effect": (0.0, 0.0, 0.0, 1.0),
}


def draw(rng, seed_sd, person_sd, pair_sd, noise_sd, n_seeds=3, n_people=12, per_person=10):
    people = np.repeat(np.arange(n_people), per_person)
    shared = rng.normal(0, person_sd, n_people)[people] + rng.normal(0, pair_sd, people.size)
    values = TRUE + rng.normal(0, seed_sd, (n_seeds, 1)) + shared + rng.normal(0, noise_sd, (n_seeds, people.size))
    return values, people.astype(str)


def coverage(interval, reps: int, sds, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for k in range(reps):
        lo, hi = interval(*draw(rng, *sds), k)
        hits += lo <= TRUE <= hi
    return hits / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--bootstrap-reps", type=int, default=300)
    args = ap.parse_args()
    print(f"3 seeds x 12 people x 10 pairs; nominal 95%; crossed t: {args.reps} draws, "
          f"crossed bootstrap: {args.bootstrap_reps} draws x 1000 resamples\n")
    print("| scenario (seed, person, pair, noise sd) | crossed t (claims) | crossed percentile bootstrap |")
    print("|---|---|---|")
    for name, sds in SCENARIOS.items():
        t = coverage(lambda v, c, k: crossed_t_interval(v, c)["ci"], args.reps, sds)
        b = coverage(lambda v, c, k: crossed_bootstrap(v, c, 1000, k)["ci"], args.bootstrap_reps, sds)
        print(f"| {name} {sds} | {t:.1%} | {b:.1%} |")


if __name__ == "__main__":
    main()
