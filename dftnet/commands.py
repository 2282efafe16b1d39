"""The ``dftnet`` subcommands that are not DVC stages: the whole benchmark outside DVC
(``bench``), DVC's queue (``fanout``) and editing photos (``edit``). They call the stages
(:mod:`dftnet.stages`) and the modules that own each job; no stage imports this module, so a
change here never re-hashes a pipeline stage.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch

from dftnet.config import Params
from dftnet.edit import AUReader
from dftnet.runtime.errors import ConfigError, DataError
from dftnet.stages import (annotator_report, check_time_limit, evaluate_variant, prepare, report, timing,
                           train_judge, train_variants)

def bench(params: Params, work: str | Path, reports_dir: str | Path, annotator_md: str | Path | None = None,
          hours: float | None = None) -> None:
    """The whole benchmark outside DVC, for a params file of its own (the real faces:
    ``params-real.yaml``): prepare, the annotator's validity (photos), the judge, every variant
    and seed, timing, evaluation, the report. Everything goes under ``work`` (runs, judge, eval,
    metrics, logs) except the reports, under ``reports_dir``. Training resumes from checkpoints,
    so a stopped bench picks up where it was by running the same command again. ``hours``: a
    sitting's time limit for the training (every run checkpoints and stops after the first epoch
    past it); then the bench stops before timing and evaluation, to go on next sitting."""
    import time

    deadline = None
    if hours is not None:  # checked before any output
        if not hours > 0:
            raise ConfigError(f"--hours: {hours} must be a positive number of hours")
        check_time_limit(params)
        deadline = time.time() + hours * 3600
    work, reports_dir = Path(work), Path(reports_dir)
    step = lambda what: print(f"bench: {what}", file=sys.stderr)  # noqa: E731
    step(f"prepare -> {params.data.root}")
    prepare(params)
    if params.data.source == "photos":
        step(f"annotator validity -> {annotator_md or reports_dir / 'annotator.md'}")
        annotator_report(params, annotator_md or reports_dir / "annotator.md", work / "metrics" / "annotator.json")
    step("judge")
    train_judge(params, work / "judge", work / "metrics" / "judge.json")
    step(f"train {', '.join(params.variants)} (seeds {params.seeds}), one pool of runs")
    left = train_variants(params, list(params.variants), work / "runs", None, work / "judge" / "judge.pt",
                          work / "logs", deadline=deadline)
    if left:
        step(f"stopped at the {hours} h limit with {len(left)} runs unfinished ({', '.join(left)}); "
             "the same command goes on from their checkpoints")
        return
    step("timing")
    timing(params, work / "timing" / "timing.json", work / "metrics" / "timing.json", reports_dir)
    for variant in params.variants:
        step(f"evaluate {variant}")
        evaluate_variant(params, variant, work / "runs", work / "judge", work / "eval", work / "metrics")
    step(f"report -> {reports_dir}")
    report(params, work / "runs", work / "eval", work / "judge", reports_dir)


def fan_out(params: Params, jobs: int, variants: list[str] | None = None, repro: bool = True) -> dict:
    """Train every variant at once through DVC's queue, ``jobs`` at a time, then ``dvc repro``
    (:mod:`dftnet.fanout`). Run in the project folder; ``variants``: default all of them."""
    from dftnet.fanout import train_in_parallel

    variants = variants or list(params.variants)
    unknown = [v for v in variants if v not in params.variants]
    if unknown:
        raise ConfigError(f"--variants: {unknown[0]} is not a variant (known: {', '.join(params.variants)})")
    beside = Path(sys.executable).with_name("dvc")
    return train_in_parallel(variants, jobs, Path.cwd(), str(beside) if beside.exists() else "dvc", repro=repro)


def photo_au_reader(params: Params, data_root: str | Path | None, judge_path: str | Path | None, image_size: int,
                    device: torch.device) -> tuple[AUReader | None, Callable[[], None] | None]:
    """(reader, closer) reading AUs off aligned uint8 N x S x S x 3 crops: the MediaPipe AU proxies
    with the calibration of a prepared photos dataset (``data_root``, default ``data.root``), else
    the suite's judge (``judge_path``), else (None, None)."""
    from dftnet.data.canonical import read_meta
    from dftnet.data.photos import annotator_for

    root = Path(data_root or params.data.root)
    meta = read_meta(root) if (root / "meta.json").is_file() else {}
    ann = annotator_for(meta, params.data.photos.landmarker or None, str(root / "meta.json"))
    if ann is not None:
        return (lambda crops: ann.read(crops.transpose(0, 3, 1, 2))[0]), ann.close
    if judge_path is not None and Path(judge_path).is_file():
        from dftnet.eval.judge import judge_predict, load_judge

        judge = load_judge(judge_path, device)
        if judge.image_size != image_size:
            raise DataError(f"{judge_path}: the judge reads {judge.image_size} px, the run edits {image_size} px")
        return (lambda crops: judge_predict(judge, torch.from_numpy(crops).permute(0, 3, 1, 2), 64, device).numpy()), None
    return None, None


def edit(params: Params, photos: list[str], run_dir: str | Path | None, out_dir: str | Path, aus: str | None = None,
         expression: str | None = None, like: str | None = None, strength: float = 3.0, steps: int = 1,
         gif: bool = False, crop: bool = False, face: str | None = None, batch_size: int = 16,
         device: str | None = None, data_root: str | Path | None = None,
         judge_path: str | Path | None = "judge/judge.pt", landmarker: str | None = None, paste: str = "change",
         colour: str = "auto") -> list[Path]:
    """``dftnet edit``: a trained run's generator on your own photos (:mod:`dftnet.edit`). The target
    is one of ``aus`` (``"AU12=3,AU06=2"``), ``expression`` (at ``strength``) or ``like`` (a photo).
    ``run_dir`` None: the shipped real-face generator (``dftnet.edit.SHIPPED``), whose folder also
    holds the AU proxies' calibration. ``paste``: change | plain; ``colour``: auto | luminance | rgb."""
    from dftnet.data.faces import Landmarker
    from dftnet.edit import PASTES, SHIPPED, Target, edit_photos, load_generator, parse_aus, photo_paths, resolve_colour
    from dftnet.runtime.numerics import pick_device

    if steps < 1 or batch_size < 1:
        raise DataError("edit: --steps and --batch-size must be at least 1")
    if paste not in PASTES:
        raise DataError(f"--paste: {paste!r} is not one of {', '.join(PASTES)}")
    target = Target(aus=parse_aus(aus) if aus is not None else None, expression=expression, strength=strength,
                    like=Path(like) if like else None)
    run_dir = Path(run_dir) if run_dir is not None else SHIPPED
    if data_root is None and (run_dir / "meta.json").is_file():  # an exported generator carries its calibration
        data_root = run_dir
    colour = resolve_colour(colour, data_root or params.data.root)
    dev = pick_device(device)
    paths = photo_paths(photos)
    G, run = load_generator(run_dir, dev)
    bundle = landmarker or params.data.photos.landmarker
    if not bundle:
        raise DataError("edit: no Face Landmarker bundle; set data.photos.landmarker or pass --landmarker")
    needs = target.needs_reading or steps > 1 or paste == "change"
    reader, close = photo_au_reader(params, data_root, judge_path, run.image_size, dev) if needs else (None, None)
    try:
        with Landmarker(bundle, max_faces=8) as lm:
            return edit_photos(paths, G, run.image_size, target, Path(out_dir), reader, lm, steps, gif, crop, face,
                               batch_size, dev, paste=paste, colour=colour)
    finally:
        if close is not None:
            close()

