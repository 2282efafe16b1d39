"""The pipeline's steps as library functions: params and paths in, declared outputs out.

Each DVC stage (``dvc.yaml``) is one call into this module, so the pipeline runs, and can be
tested, without DVC; the ``dftnet`` subcommands that are not stages live in :mod:`dftnet.commands`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from dftnet.runtime import atomic
from dftnet.config import Params, load_params, remedy_of, resolve_model, resolve_variant
from dftnet.runtime.errors import ConfigError, DataError


# Every tracked file a repro writes from the clock (the timing stage's); nothing else differs
# between two runs of the same commit. The training runs' wall-clock records are not tracked:
# they sit beside the runs folder (dftnet.training.train.wall_clock_path).
CLOCK_OUTPUTS = ("timing/timing.json", "metrics/timing.json", "reports/timing.md", "reports/results_timing.csv")


def threads_allowed() -> int:
    """Cores this pipeline may occupy: ``OMP_NUM_THREADS`` where set, else every core."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, os.cpu_count() or 1)


def load(params_path: str | Path = "params.yaml") -> Params:
    """The validated params, with this process's numerics pinned by them (:mod:`dftnet.runtime.numerics`)."""
    from dftnet.runtime import numerics

    params = load_params(params_path)
    numerics.pin(params.compute.threads, params.compute.deterministic)
    return params


def write_json(path: str | Path, payload: dict) -> None:
    """Atomic JSON write (:mod:`dftnet.runtime.atomic`)."""
    atomic.write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def dataset(params: Params):
    from dftnet.data.canonical import load_dataset

    ds = load_dataset(params.data.root)
    if ds.image_size != params.data.image_size:
        raise DataError(f"{params.data.root}: images are {ds.image_size} px but data.image_size is "
                        f"{params.data.image_size}; run the prepare stage again")
    return ds


def prepare(params: Params) -> None:
    """Render the embedded synthetic dataset, ingest the user's aligned crops and AU table, or
    find, align and label the faces of a folder of raw photos, into ``data.root``."""
    from dftnet.data.canonical import save_dataset

    if params.data.source == "synthetic":
        from dftnet.data.synth_dataset import build_synthetic_dataset

        ds = build_synthetic_dataset(params.data.synthetic, params.data.image_size)
    elif params.data.source == "photos":
        from dftnet.data.photos import ingest_photos

        ds = ingest_photos(params.data.photos, params.data.image_size)
    else:
        from dftnet.data.ingest import ingest_folder

        ds = ingest_folder(params.data.folder, params.data.image_size)
    save_dataset(ds, params.data.root)


def annotator_report(params: Params, out: str | Path = "reports/annotator.md",
                     metrics: str | Path = "metrics/annotator.json") -> None:
    """The MediaPipe AU proxies' validity on the prepared photos (:mod:`dftnet.reporting.validity`):
    ``out`` (Markdown) and every number behind it in ``metrics``, written together or not at all."""
    import platform

    from dftnet.reporting import validity
    from dftnet.data.photos import annotator_for

    ds = dataset(params)
    annotator = annotator_for(ds.meta)
    if annotator is None:
        raise DataError(f"{params.data.root}: the annotator's validity needs a photos dataset (data.source: photos)")
    photos = params.data.photos
    try:
        expr = validity.expression_validity(ds, photos.neutral_label, params.eval.bootstrap, params.eval.seed)
        agreement = None
        if photos.openface_images and photos.openface_aus:
            read, ref, ids = validity.read_openface_sample(photos.openface_images, photos.openface_aus, annotator,
                                                           ds.image_size)
            agreement = validity.openface_agreement(read, ref, ids)
    finally:
        annotator.close()
    dist = validity.distributions(ds, photos.neutral_label)
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores"
    text = validity.markdown(expr, dist, agreement, ds, machine)
    payload = {"expressions": expr, "unvalidated": validity.unvalidated(expr), "distributions": dist,
               "openface": agreement, "calibration": ds.meta.get("annotator")}
    out, metrics = Path(out), Path(metrics)
    with atomic.staged(metrics.parent) as m_dir, atomic.staged(out.parent) as o_dir:
        write_json(m_dir / metrics.name, payload)
        atomic.write_text(o_dir / out.name, text + "\n")


def _train_one(params: Params, variant: str, seed: int, out: Path, device: str | None, threads: int,
               judge_path: Path | None, wall_clock: Path | None = None, epochs_this_session: int | None = None,
               deadline: float | None = None) -> bool:
    """Train one run; True when it has reached its last epoch (now or in an earlier sitting)."""
    from dftnet.runtime import numerics
    from dftnet.eval.judge import load_judge
    from dftnet.training.train import train

    run = resolve_variant(params, variant, seed)
    if deadline is not None and time.time() >= deadline:  # the sitting's time is up before this run's turn
        return finished(out, run.train.epochs)
    if params.compute.train_processes > 1:
        from dftnet.training.launch import launch_distributed

        launch_distributed(params, run, out, device, threads, judge_path, epochs_this_session, wall_clock)
        return True if epochs_this_session is None else finished(out, run.train.epochs)
    numerics.pin(threads, params.compute.deterministic)  # a spawned worker starts unpinned
    judge = None
    if judge_path is not None and run.train.curve_every:
        if not judge_path.exists():
            raise DataError(f"{judge_path}: the AU judge that draws the learning curve is missing; train it first "
                            f"(dvc repro judge, or dftnet judge) or set train.curve_every: 0")
        judge = load_judge(judge_path, torch.device("cpu"))  # the run moves it to the device it claims
    return bool(train(run, dataset(params), out, device, epochs_this_session, judge, params.compute, wall_clock,
                      deadline))


def check_time_limit(params: Params) -> None:
    """A time limit needs one process per run: the ranks of a data-parallel run read their own
    clocks and could stop at different epochs."""
    if params.compute.train_processes > 1:
        raise ConfigError("--hours: needs compute.train_processes: 1 (one process per run); for data-parallel "
                          "runs use dftnet train --epochs-this-session")


def finished(run_dir: Path, epochs: int) -> bool:
    """Whether the run in ``run_dir`` has trained its ``epochs`` (its summary says so)."""
    try:
        summary = json.loads((run_dir / "train_summary.json").read_text())
    except (OSError, ValueError):  # absent, or torn: the run trains on (its checkpoint is the state)
        return False
    return isinstance(summary, dict) and summary.get("epochs") == epochs


def thread_plan(n_jobs: int, cores: int, threads_per_job: int = 1) -> int:
    """Parallel workers for ``n_jobs`` runs of ``threads_per_job`` threads each on ``cores`` cores.

    The threads of a job are part of its result (:mod:`dftnet.runtime.numerics`), so they are a param
    and never grow to fill idle cores; only the number of jobs in flight depends on the machine.
    Small convolutions scale poorly over threads and cores oversubscribed by multi-threaded
    jobs thrash (a step 10-20x slower), hence one thread per run by default. Single-thread
    jobs only share a core's time, so up to two per core run at once: 3 seeds on 2 cores
    finish in 1.5 run-times instead of 2 (measured here: 3 x 23 vs 2 x 36 images/s, 4% lost).
    """
    if threads_per_job <= 1:
        return max(1, min(n_jobs, 2 * cores))
    return max(1, min(n_jobs, cores // threads_per_job))


def train_variant(params: Params, variant: str, runs_root: str | Path = "runs", device: str | None = None,
                  judge_path: str | Path | None = "judge/judge.pt", logs_root: str | Path = "logs",
                  epochs_this_session: int | None = None, deadline: float | None = None) -> list[str]:
    """Train ``variant`` once per seed into ``<runs_root>/<variant>/seed<k>/``.

    On a CPU the seeds run in parallel processes (:func:`thread_plan`), within the cores
    ``OMP_NUM_THREADS`` allows; on a machine with several GPUs, one seed per GPU at a time. Each run
    is seeded on its own and writes only its own folder, and its wall-clock record (seconds,
    images/s) beside ``runs_root`` (:func:`dftnet.training.train.wall_clock_path`), outside the hashed outputs.
    ``judge_path``: the AU judge that draws each run's learning curve (``train.curve_every``).
    ``logs_root``: where the seed-mean logs for ``dvc plots`` go (``<logs_root>/<variant>.csv``).
    ``epochs_this_session``: train at most this many more epochs per seed, then stop, resumable
    (a machine lent for a limited time); the same call again goes on from the checkpoints.
    ``deadline`` (``time.time()`` seconds): the same, by the clock: each run stops after the first
    epoch that ends past it, and a run whose turn comes later does not start. Returns the runs
    left unfinished (``<variant>/seed<k>``).
    """
    return train_variants(params, [variant], runs_root, device, judge_path, logs_root, epochs_this_session, deadline)


def train_variants(params: Params, variants: list[str], runs_root: str | Path = "runs", device: str | None = None,
                   judge_path: str | Path | None = "judge/judge.pt", logs_root: str | Path = "logs",
                   epochs_this_session: int | None = None, deadline: float | None = None) -> list[str]:
    """:func:`train_variant` for several variants with one pool of runs: every (variant, seed) is a
    job, so a variant with fewer seeds than the cores does not leave a core idle (``bench``). Each
    run's numbers do not depend on which runs share the pool: it is seeded on its own and its
    threads are fixed (``compute.train_threads``). The pool takes seed 0 of every variant first,
    so a sitting cut short leaves whole seeds. Returns the runs left unfinished."""
    from dftnet.nets.generators import build_critic, build_generator
    from dftnet.runtime.numerics import pick_device
    from dftnet.training.train import wall_clock_path

    if epochs_this_session is not None and epochs_this_session < 1:
        raise DataError(f"--epochs-this-session: {epochs_this_session} must be at least 1")
    for variant in variants:
        run = resolve_variant(params, variant, params.seeds[0])
        build_generator(run.model, run.image_size)  # every shape check of the networks, before any output exists
        build_critic(run.model, run.image_size)
    judge_path = Path(judge_path) if judge_path is not None else None
    if deadline is not None:
        check_time_limit(params)
    order = [(v, s) for s in params.seeds for v in variants]
    jobs = [(params, v, s, Path(runs_root) / v / f"seed{s}", device) for v, s in order]
    clocks = [wall_clock_path(runs_root, v, s) for v, s in order]
    if deadline is not None and time.time() >= deadline:  # the sitting's time is up: no pool to start
        return [f"{v}/seed{s}" for (v, s), (_, _, _, out, _) in zip(order, jobs)
                if not finished(out, resolve_variant(params, v, s).train.epochs)]
    dev = pick_device(device)
    threads = params.compute.train_threads
    if params.compute.train_processes > 1:  # a distributed run takes the machine
        workers = 1
    elif dev.type == "cpu":
        workers = thread_plan(len(jobs), threads_allowed(), threads)
    else:  # one seed per GPU at a time, each process claiming its own (numerics.claim_gpu)
        workers = min(len(jobs), torch.cuda.device_count()) if dev.index is None else 1
    if workers == 1:
        done = [_train_one(*job, threads=threads, judge_path=judge_path, wall_clock=clock,
                           epochs_this_session=epochs_this_session, deadline=deadline)
                for job, clock in zip(jobs, clocks)]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        from dftnet.runtime.procs import die_with_parent

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(_train_one, *job, threads=threads, judge_path=judge_path, wall_clock=clock,
                                   epochs_this_session=epochs_this_session, deadline=deadline)
                       for job, clock in zip(jobs, clocks)]
            done = [future.result() for future in futures]  # re-raises a worker's error (BenchError included)
    logs_root, has = Path(logs_root), lambda v, name: all(
        (Path(runs_root) / v / f"seed{s}" / name).exists() for s in params.seeds)
    for variant in variants:
        if has(variant, "log.csv"):  # a run whose turn the time limit never gave has no log yet
            write_mean_log(variant, Path(runs_root), params.seeds, logs_root / f"{variant}.csv")
        if has(variant, "curve.csv"):
            write_mean_log(variant, Path(runs_root), params.seeds, logs_root / f"{variant}_curve.csv", "curve.csv")
    return [f"{v}/seed{s}" for (v, s), ok in zip(order, done) if not ok]


def write_mean_log(variant: str, runs_root: Path, seeds: list[int], out: Path, name: str = "log.csv") -> None:
    """``logs/<variant>.csv``: the per-step log (or ``curve.csv``, the learning curve) averaged
    over seeds, for ``dvc plots``."""
    import pandas as pd

    frames = [pd.read_csv(runs_root / variant / f"seed{s}" / name) for s in seeds]
    mean = pd.concat(frames).groupby("step", as_index=False).mean(numeric_only=True)
    atomic.write_with(out, lambda tmp: mean.to_csv(tmp, index=False, float_format="%.6g"))


def contact_sheet(params: Params, out: str | Path) -> None:
    from dftnet.data.contact_sheet import write_contact_sheet

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_contact_sheet(out, size=128, n_identities=3, seed=params.data.synthetic.seed)


def train_judge(params: Params, out_dir: str | Path = "judge", metrics: str | Path = "metrics/judge.json") -> None:
    """Fit the independent AU judge: ``<out_dir>/judge.pt`` and its full quality report
    ``<out_dir>/report.json`` (per AU, per split); the headline figures go to ``metrics``."""
    from dftnet.runtime import numerics
    from dftnet.eval.judge import save_judge, train_judge as fit
    from dftnet.runtime.numerics import pick_device

    ds = dataset(params)
    judge, report = fit(ds, params.judge, pick_device())
    seconds = report.pop("seconds")  # wall time: not a metric, it differs between identical runs
    report["numerics"] = numerics.record()
    metrics = Path(metrics)
    with atomic.staged(out_dir) as judge_dir, atomic.staged(metrics.parent) as metrics_dir:  # all or nothing
        save_judge(judge_dir / "judge.pt", judge, params.judge, ds.image_size)
        write_json(judge_dir / "report.json", report)
        write_json(metrics_dir / metrics.name,
                   {f"{split}_mae": (report.get(split) or {}).get("mean_mae") for split in ("heldout", "test")})
    print(f"judge: trained in {seconds:.0f} s", file=sys.stderr)


def timing(params: Params, out: str | Path = "timing/timing.json", headline: str | Path | None = "metrics/timing.json",
           reports_dir: str | Path | None = "reports", reference: str = "dftnet", baseline: str = "ganimation") -> None:
    """Inference timing of every variant's generator, interleaved in one process, and each
    generator's FLOPs at the run's size and at the paper's (:data:`dftnet.nets.generators.PAPER_SIZE`).

    Timing and FLOPs depend on the architecture, not the weights, so freshly initialised
    generators (seeded) stand in for the trained ones: one measurement per variant, with its
    own repeats (``eval.timing_runs``), never copied into the seeds as if they were replicates.
    ``headline``: the reference's median time and FLOPs over the baseline's, for ``dvc metrics``.
    ``reports_dir``: where claim 3 and the timing table go (``timing.md``, ``results_timing.csv``;
    :func:`dftnet.reporting.report.build_timing_report`). Every output here is read by the clock, and no
    other stage reads them, so the rest of a repro is the same bytes on any machine.
    """
    from dftnet.runtime import numerics
    from dftnet.nets import accel
    from dftnet.eval.timing import time_generators
    from dftnet.nets.generators import at_paper_size, build_generator, generator_cost
    from dftnet.runtime.numerics import pick_device

    torch.manual_seed(params.eval.seed)
    device = pick_device()
    size = params.data.image_size
    models = {v: resolve_model(params, v) for v in params.variants}
    gens = {v: build_generator(m, size).to(device) for v, m in models.items()}
    e = params.eval
    fast = accel.resolve(params.compute, device)
    result = time_generators(gens, size, e.timing_batch_sizes, e.timing_runs, e.timing_warmup, device, seed=e.seed,
                             fast=fast)
    if device.type == "cuda":  # the same passes replayed from CUDA graphs (no launch overhead)
        result["cuda_graphs"] = time_generators(gens, size, e.timing_batch_sizes, e.timing_runs, e.timing_warmup,
                                                device, seed=e.seed, fast=fast, graphs=True)["models"]

    def cost(m, image_size: int) -> dict:
        c = generator_cost(m, image_size)
        return {"image_size": image_size, "base_channels": m.base_channels, "n_res_blocks": m.n_res_blocks,
                "gflops": c["gflops"], "params_millions": c["params"] / 1e6}

    result["flops"] = {v: {"run": cost(m, size), "paper": cost(*at_paper_size(m))} for v, m in models.items()}
    result["environment"]["numerics"] = numerics.record()
    write_json(out, result)
    if headline is not None and reference in models and baseline in models:
        # Short keys, for a readable `dvc metrics show`: <reference> over <baseline>.
        ratio = {f"ms_b{b}_ratio": result["ratios"][f"{reference}/{baseline}"][f"b{b}"] for b in e.timing_batch_sizes}
        ratio["gflops_ratio"] = (result["flops"][reference]["paper"]["gflops"]
                                 / result["flops"][baseline]["paper"]["gflops"])
        write_json(headline, ratio)
    if reports_dir is not None:
        from dftnet.reporting.claims import Bootstrap
        from dftnet.reporting.report import build_timing_report

        build_timing_report(Path(out), list(params.variants), Path(reports_dir),
                            Bootstrap(params.eval.bootstrap, params.eval.seed), baseline, reference)


def evaluate_variant(params: Params, variant: str, runs_root: str | Path = "runs", judge_dir: str | Path = "judge",
                     eval_root: str | Path = "eval", metrics_root: str | Path = "metrics") -> None:
    """Every metric for each seed of ``variant``: ``eval/<variant>/seed<k>/metrics.json``, and
    the headline metrics' means over seeds in ``metrics/<variant>.json`` for ``dvc metrics show``.
    All or nothing: a failure in any seed leaves every earlier output as it was (:func:`atomic.staged`)."""
    from dftnet.data.photos import annotator_for
    from dftnet.eval.judge import load_judge
    from dftnet.runtime.numerics import pick_device

    device = pick_device()
    ds = dataset(params)
    judge = load_judge(Path(judge_dir) / "judge.pt", device)
    annotator = annotator_for(ds.meta)  # real photos: the MediaPipe AU proxies read every edit too
    try:
        _evaluate_seeds(params, variant, Path(runs_root), ds, judge, annotator, device, eval_root, metrics_root)
    finally:
        if annotator is not None:
            annotator.close()


def _evaluate_seeds(params: Params, variant: str, runs_root: Path, ds, judge, annotator, device, eval_root,
                    metrics_root) -> None:
    from dftnet.training.checkpoints import load_trained
    from dftnet.eval.evaluate import evaluate_run
    from dftnet.eval.schema import HEADLINE

    summaries = []
    with atomic.staged(Path(eval_root) / variant) as evals, atomic.staged(metrics_root) as metrics_dir:
        for seed in params.seeds:
            G, D, _ = load_trained(runs_root / variant / f"seed{seed}", device)
            metrics, _ = evaluate_run(G, D, ds, judge, params.eval, device, annotator=annotator)
            metrics = {"variant": variant, "seed": seed, **metrics}
            write_json(evals / f"seed{seed}" / "metrics.json", metrics)
            summaries.append(metrics["summary"])
        headline = {}
        for key in HEADLINE:
            values = [s[key] for s in summaries if s.get(key) is not None]
            headline[key] = sum(values) / len(values) if len(values) == len(summaries) else None
        write_json(metrics_dir / f"{variant}.json", headline)


def report(params: Params, runs_root: str | Path = "runs", eval_root: str | Path = "eval",
           judge_dir: str | Path = "judge", out_dir: str | Path = "reports") -> None:
    """Tables, claims and the paper's figure grids from the evaluated runs. All or nothing:
    everything is written to a staging folder and moved into ``out_dir`` only when all of it
    succeeded, so a failure (a missing checkpoint, a bad metrics file) leaves the previous report."""
    with atomic.staged(out_dir) as staging:
        _report(params, Path(runs_root), Path(eval_root), Path(judge_dir), staging)


def _report(params: Params, runs_root: Path, eval_root: Path, judge_dir: Path, out_dir: Path) -> None:
    from dftnet.training.checkpoints import load_trained
    from dftnet.reporting.claims import Bootstrap
    from dftnet.reporting.figures import report_figures
    from dftnet.reporting.report import build_report

    paths = [eval_root / v / f"seed{s}" / "metrics.json" for v in params.variants for s in params.seeds]
    boot = Bootstrap(params.eval.bootstrap, params.eval.seed)
    remedies = {v: m for v in params.variants if (m := remedy_of(params, v)) is not None}
    runs = build_report(paths, judge_dir / "report.json", out_dir, boot, remedies=remedies)
    seed = params.seeds[0]
    gens = {v: load_trained(runs_root / v / f"seed{seed}")[0] for v in params.variants}
    run_dirs = {f"{v}/seed{s}": runs_root / v / f"seed{s}" for v in params.variants for s in params.seeds}
    report_figures(runs, gens, dataset(params), run_dirs, out_dir / "figures")
