"""One training run over N data-parallel processes: the program ``torchrun`` starts on each rank.

    python -m torch.distributed.run --standalone --nproc_per_node N -m dftnet.launch \\
        --config run.json --data data/faces --out runs/dftnet/seed0 [--judge judge/judge.pt]

:func:`dftnet.stages.train_variant` writes ``run.json`` (the resolved run config) and starts
this when ``compute.train_processes`` > 1; see :mod:`dftnet.distributed` for what each rank does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from dftnet.cli import guarded

    p = argparse.ArgumentParser(prog="python -m dftnet.launch")
    p.add_argument("--config", required=True, help="resolved run config (JSON, RunConfig.to_dict)")
    p.add_argument("--compute", default=None, help="the compute section of the params (JSON): the fast path")
    p.add_argument("--data", required=True, help="prepared dataset folder")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--judge", default=None, help="AU judge drawing the learning curve (rank 0)")
    p.add_argument("--wall-clock", default=None, help="where the wall-clock record goes (rank 0)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    p.add_argument("--no-deterministic", action="store_true")
    p.add_argument("--stop-after-epochs", type=int, default=None, help="end early, resumable (tests)")
    args = p.parse_args(argv)

    def run() -> None:
        from dftnet import numerics
        from dftnet.config import ComputeConfig, from_mapping, run_config_from_dict
        from dftnet.data.canonical import load_dataset
        from dftnet.train import train

        numerics.pin(args.threads, not args.no_deterministic)
        cfg = run_config_from_dict(json.loads(Path(args.config).read_text(encoding="utf-8")))
        compute = (from_mapping(ComputeConfig, json.loads(Path(args.compute).read_text(encoding="utf-8")), "compute.")
                   if args.compute else None)
        judge = None
        if args.judge and cfg.train.curve_every:
            from dftnet.eval.judge import load_judge

            judge = load_judge(args.judge, numerics.pick_device(args.device))
        train(cfg, load_dataset(args.data), Path(args.out), args.device, args.stop_after_epochs, judge, compute,
              wall_clock=args.wall_clock)

    return guarded(run)


if __name__ == "__main__":
    sys.exit(main())
