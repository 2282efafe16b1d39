"""The ``dftnet`` command: one subcommand per pipeline step, each a thin call into the library.

Errors meant for people (:class:`dftnet.runtime.errors.BenchError`) print one line and exit 2
(:func:`dftnet.runtime.errors.guarded`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from dftnet.runtime.errors import guarded


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dftnet", description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="render the synthetic dataset or ingest a folder into data.root")
    t = sub.add_parser("train", help="train one variant for every seed (resumes from checkpoints)")
    t.add_argument("variant")
    t.add_argument("--out", default="runs", help="runs root: <out>/<variant>/seed<k>/")
    t.add_argument("--device", default=None, help="cuda / cpu (default: cuda where present)")
    t.add_argument("--judge", default="judge", help="folder of the AU judge that draws the learning curve")
    t.add_argument("--logs", default="logs", help="where the seed-mean logs go: <logs>/<variant>.csv")
    t.add_argument("--epochs-this-session", type=int, default=None, metavar="N",
                   help="train at most N more epochs per seed, then stop; the same command goes on from there")
    j = sub.add_parser("judge", help="train the independent AU judge")
    j.add_argument("--out", default="judge")
    j.add_argument("--metrics", default=None, help="its headline figures (default: metrics/judge.json beside --out, "
                   "so a judge trained elsewhere never touches the default run's)")
    e = sub.add_parser("evaluate", help="evaluate every seed of one variant")
    e.add_argument("variant")
    e.add_argument("--runs", default="runs")
    e.add_argument("--judge", default="judge")
    e.add_argument("--out", default="eval")
    e.add_argument("--metrics", default=None, help="the means over seeds: <metrics>/<variant>.json (default: metrics/ "
                   "beside --out, so an evaluation elsewhere never touches the default run's)")
    tm = sub.add_parser("timing", help="inference timing of every variant's generator, interleaved")
    tm.add_argument("--out", default="timing/timing.json")
    tm.add_argument("--reports", default=None, help="also write claim 3 and the timing table (timing.md, "
                    "results_timing.csv) into this folder")
    r = sub.add_parser("report", help="tables, claims and figure grids into reports/")
    r.add_argument("--runs", default="runs")
    r.add_argument("--eval", default="eval")
    r.add_argument("--judge", default="judge")
    r.add_argument("--out", default="reports")
    a = sub.add_parser("annotator", help="the MediaPipe AU proxies' validity on a prepared photos dataset")
    a.add_argument("--out", default="reports/annotator.md")
    a.add_argument("--metrics", default="metrics/annotator.json")
    b = sub.add_parser("bench", help="the whole benchmark in one go, outside DVC (e.g. --params params-real.yaml)")
    b.add_argument("--work", default="real", help="runs, judge, eval, metrics and logs go under this folder")
    b.add_argument("--reports", default="reports/real", help="tables, claims and figures")
    b.add_argument("--hours", type=float, default=None, metavar="H",
                   help="train for about H hours this sitting, then checkpoint and stop before evaluation; "
                   "the same command goes on (e.g. make cpu-xl HOURS=2)")
    b.add_argument("--annotator-report", default=None,
                   help="the annotator's validity (photos; default: <reports>/annotator.md)")
    ed = sub.add_parser("edit", help="edit your own photos with a trained run (pasted back into the photo)")
    ed.add_argument("photos", nargs="+", help="photo files or folders of photos")
    ed.add_argument("--run", default=None, help="a trained run folder, runs/<variant>/seed<k>, or an exported "
                    "generator (default: the shipped real-face DFT-Net, models/real-faces)")
    goal = ed.add_mutually_exclusive_group(required=True)
    goal.add_argument("--aus", help="target AUs, e.g. AU12=3,AU06=2 (0-5; unnamed AUs keep the source's reading)")
    goal.add_argument("--expression", help="happiness, sadness, surprise, fear, anger, disgust or contempt")
    goal.add_argument("--like", help="another photo whose AUs are the target")
    ed.add_argument("--strength", type=float, default=3.0, help="intensity of --expression's AUs (0-5, default 3)")
    ed.add_argument("--steps", type=int, default=1, help="frames of the interpolation from the source's AUs (strip)")
    ed.add_argument("--gif", action="store_true", help="with --steps: an animated GIF too")
    ed.add_argument("--crop", action="store_true", help="write the aligned crops instead of pasting back")
    ed.add_argument("--face", default=None, help="with several faces: largest, or N (1 = leftmost)")
    ed.add_argument("--out", default="edits", help="output folder (default: edits)")
    ed.add_argument("--paste", default="change", choices=("change", "plain"),
                    help="change: add only the generator's change to the photo (default); plain: its rendering")
    ed.add_argument("--colour", default="auto", choices=("auto", "luminance", "rgb"),
                    help="luminance: a grey-trained model edits the luminance, chroma kept; auto: when the run's "
                    "training data are grey (default)")
    ed.add_argument("--device", default=None, help="cuda / cpu (default: cuda where present)")
    ed.add_argument("--batch-size", type=int, default=16)
    ed.add_argument("--data", default=None, help="prepared photos dataset whose AU calibration reads the sources "
                    "(default: data.root)")
    ed.add_argument("--judge", default="judge/judge.pt", help="AU judge, when no photos dataset is at hand")
    ed.add_argument("--landmarker", default=None, help="Face Landmarker bundle (default: data.photos.landmarker)")
    fo = sub.add_parser("fanout", help="train every variant at once through DVC's queue, then dvc repro")
    fo.add_argument("--jobs", "-j", type=int, default=2, help="experiments at a time (e.g. the number of GPUs)")
    fo.add_argument("--variants", default=None, help="comma-separated (default: every variant in the params)")
    fo.add_argument("--no-repro", action="store_true", help="stop after training; dvc repro collects the runs later")
    c = sub.add_parser("contact-sheet", help="the synthetic faces' contact sheet")
    c.add_argument("--out", default="reports/synthetic_contact_sheet.png")
    return p


def beside(out: str, name: str) -> Path:
    """``name`` in the folder that holds ``out``: ``beside("eval", "metrics")`` is ``metrics``,
    ``beside("cpu-long/eval", "metrics")`` is ``cpu-long/metrics`` (the layout ``bench`` writes)."""
    return Path(out).parent / name


def _edit(commands, params, args) -> None:
    written = commands.edit(params, args.photos, args.run, args.out, aus=args.aus, expression=args.expression,
                            like=args.like, strength=args.strength, steps=args.steps, gif=args.gif, crop=args.crop,
                            face=args.face, batch_size=args.batch_size, device=args.device, data_root=args.data,
                            judge_path=args.judge, landmarker=args.landmarker, paste=args.paste, colour=args.colour)
    print(f"edit: {len(written)} files in {args.out}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from dftnet import commands, stages  # heavy imports only once the arguments parse

    def run() -> None:
        params = stages.load(args.params)
        if args.command == "prepare":
            stages.prepare(params)
        elif args.command == "train":
            stages.train_variant(params, args.variant, args.out, args.device, Path(args.judge) / "judge.pt", args.logs,
                                 args.epochs_this_session)
        elif args.command == "judge":
            stages.train_judge(params, args.out, args.metrics or beside(args.out, "metrics/judge.json"))
        elif args.command == "evaluate":
            stages.evaluate_variant(params, args.variant, args.runs, args.judge, args.out,
                                    args.metrics or beside(args.out, "metrics"))
        elif args.command == "timing":
            stages.timing(params, args.out, None, args.reports)
        elif args.command == "report":
            stages.report(params, args.runs, args.eval, args.judge, args.out)
        elif args.command == "annotator":
            stages.annotator_report(params, args.out, args.metrics)
        elif args.command == "bench":
            commands.bench(params, args.work, args.reports, args.annotator_report, args.hours)
        elif args.command == "edit":
            _edit(commands, params, args)
        elif args.command == "fanout":
            commands.fan_out(params, args.jobs, args.variants.split(",") if args.variants else None, not args.no_repro)
        elif args.command == "contact-sheet":
            stages.contact_sheet(params, args.out)

    return guarded(run)


if __name__ == "__main__":
    sys.exit(main())
