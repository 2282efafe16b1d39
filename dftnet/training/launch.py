"""One training run over N data-parallel processes: :func:`launch_distributed` starts ``torchrun``,
and :func:`main` is the program it starts on each rank.

    python -m torch.distributed.run --standalone --nproc_per_node N -m dftnet.training.launch \\
        --config run.json --data data/faces --out runs/dftnet/seed0 [--judge judge/judge.pt]

:func:`dftnet.stages.train_variant` calls :func:`launch_distributed` when
``compute.train_processes`` > 1; it writes ``run.json`` (the resolved run config) and starts
this; see :mod:`dftnet.training.distributed` for what each rank does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dftnet.config import Params, RunConfig


def launch_distributed(params: Params, run: RunConfig, out: Path, device: str | None, threads: int, judge_path: Path | None,
                       epochs_this_session: int | None = None, wall_clock: Path | None = None) -> None:
    """Train one run over ``compute.train_processes`` data-parallel processes (``torchrun``,
    :mod:`dftnet.training.launch`). The ranks' own one-line errors are kept; torchrun's report of a failed
    child is not shown, so a failure is still one line."""
    import dataclasses
    import os
    import subprocess
    import tempfile

    from dftnet.runtime.errors import DataError

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".launch-") as tmp:
        spec, compute = Path(tmp) / "run.json", Path(tmp) / "compute.json"
        spec.write_text(json.dumps(run.to_dict()), encoding="utf-8")
        compute.write_text(json.dumps(dataclasses.asdict(params.compute)), encoding="utf-8")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={params.compute.train_processes}", "-m", "dftnet.training.launch", "--config", str(spec),
               "--compute", str(compute),
               "--data", str(params.data.root), "--out", str(out), "--threads", str(threads)]
        cmd += ["--judge", str(judge_path)] if judge_path is not None else []
        cmd += ["--wall-clock", str(wall_clock)] if wall_clock is not None else []
        cmd += ["--device", device] if device else []
        cmd += [] if params.compute.deterministic else ["--no-deterministic"]
        cmd += ["--epochs-this-session", str(epochs_this_session)] if epochs_this_session else []
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        errors = []
        assert proc.stderr is not None  # stderr=PIPE
        for line in proc.stderr:
            if line.startswith("error: "):
                errors.append(line.strip()[len("error: "):])
            elif line.startswith("epoch "):
                print(line, end="", file=sys.stderr)  # rank 0's progress lines; torchrun's own chatter is dropped
        if proc.wait() != 0:
            raise DataError(errors[0] if errors else f"{out}: distributed training failed (torchrun exit {proc.returncode})")


def main(argv: list[str] | None = None) -> int:
    from dftnet.runtime.errors import guarded

    p = argparse.ArgumentParser(prog="python -m dftnet.training.launch")
    p.add_argument("--config", required=True, help="resolved run config (JSON, RunConfig.to_dict)")
    p.add_argument("--compute", default=None, help="the compute section of the params (JSON): the fast path")
    p.add_argument("--data", required=True, help="prepared dataset folder")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--judge", default=None, help="AU judge drawing the learning curve (rank 0)")
    p.add_argument("--wall-clock", default=None, help="where the wall-clock record goes (rank 0)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    p.add_argument("--no-deterministic", action="store_true")
    p.add_argument("--epochs-this-session", type=int, default=None, help="train at most this many more epochs, resumable")
    args = p.parse_args(argv)

    def run() -> None:
        from dftnet.runtime import numerics
        from dftnet.config import ComputeConfig, from_mapping, run_config_from_dict
        from dftnet.data.canonical import load_dataset
        from dftnet.training.train import train

        numerics.pin(args.threads, not args.no_deterministic)
        cfg = run_config_from_dict(json.loads(Path(args.config).read_text(encoding="utf-8")))
        compute = (from_mapping(ComputeConfig, json.loads(Path(args.compute).read_text(encoding="utf-8")), "compute.")
                   if args.compute else None)
        judge = None
        if args.judge and cfg.train.curve_every:
            from dftnet.eval.judge import load_judge

            judge = load_judge(args.judge, numerics.pick_device(args.device))
        train(cfg, load_dataset(args.data), Path(args.out), args.device, args.epochs_this_session, judge, compute,
              wall_clock=args.wall_clock)

    return guarded(run)


if __name__ == "__main__":
    sys.exit(main())
