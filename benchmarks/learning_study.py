"""The learning study: which training recipe makes DFT-Net and GANimation edit at CPU scale.

    python benchmarks/learning_study.py run [--recipes benchmarks/recipes.yaml] [--only C C_ncritic5 ...]
                                            [--seeds 0 1 2] [--variants dftnet ganimation] [--workers 2]
    python benchmarks/learning_study.py import-default   # the default `dvc repro`'s runs as recipe "default"
    python benchmarks/learning_study.py import --work cpu-xl --params params-cpu-xl.yaml --recipe cpu_xl
                                                         # another pipeline's finished runs, as one recipe's rows
    python benchmarks/learning_study.py export --recipe R --variant dftnet --params params-cpu-long.yaml --work cpu-long
                                               --as dftnet_clean  # the inverse: study runs become a pipeline's runs
    python benchmarks/learning_study.py test [--only R] [--seeds 0] [--variants dftnet]
                                         # a frozen recipe's runs on the test pairs, each read once
    python benchmarks/learning_study.py rescore          # rows whose checkpoints remain, scored again
    python benchmarks/learning_study.py table            # -> reports/learning_study.md

A recipe is a named set of dotted overrides of ``params.yaml`` (``train.n_critic: 5``) in
``benchmarks/recipes.yaml``, each with the one thing it changes. Every (recipe, variant, seed)
trains from scratch on the prepared dataset (``data.root``; run ``dvc repro judge`` first)
with its learning curve read by the judge (``judge/judge.pt``) (a recipe with ``trained_as: OTHER``
that differs from OTHER only in settings training never sees scores OTHER's runs), then edits every
**validation** pair once (never a test pair: those are read once, by ``evaluate``) and records
the judge's AU error of the edits, its two floors (the unedited sources' and the neutral
faces'), the raise progress of the asked AUs, the paired L1 to the ground-truth target and the
source's L1 (its floor), and the wall seconds. Each result is one JSON file under ``study/results/``; a run
whose file exists is skipped, so the study resumes and grows. Runs go in parallel
processes, one thread each (``--workers``); the table lists every finished run, failures
included.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "study"
# The edit-quality targets (the artifacts issue), every seed: see meets_targets.
TARGET_UNCHANGED = 2.0  # unchanged-region L1 / the source's
TARGET_RAISE = 0.8      # raise progress / the ground truth's
TARGET_AU45 = 0.5       # AU45 raise and lower progress / the ground truth's
TARGET_NEUTRAL = 0.75   # AU error / the neutral face's


def recipe_params(recipes: dict, name: str, base_path: Path):
    """params.yaml with recipe ``name``'s dotted overrides applied, validated strictly."""
    import yaml

    from dftnet.config import Params, from_mapping

    raw = yaml.safe_load(base_path.read_text())
    for key, value in (recipes[name].get("set") or {}).items():
        node, *path = raw, *key.split(".")
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return from_mapping(Params, raw)


# Settings that act only once a generator is trained (eval mode): a recipe that differs from
# another only in these can score that recipe's checkpoints instead of training again (``trained_as``).
EVAL_ONLY = ("model.flow_deadzone_eval", "model.flow_gate_eval", "model.change_deadzone_eval")


def check_trained_as(recipes: dict, name: str, base_path: Path) -> str:
    """The recipe whose runs recipe ``name`` scores (its ``trained_as``), after checking that the
    two differ only in :data:`EVAL_ONLY` settings, for every variant; one-line SystemExit otherwise."""
    from dftnet.config import resolve_variant

    source = recipes[name]["trained_as"]
    if source not in recipes or "trained_as" in recipes[source]:
        sys.exit(f"error: recipes.{name}.trained_as: {source!r} is not a recipe that trains")
    mine, theirs = recipe_params(recipes, name, base_path), recipe_params(recipes, source, base_path)
    for variant in mine.variants:
        a, b = resolve_variant(mine, variant, 0).to_dict(), resolve_variant(theirs, variant, 0).to_dict()
        diff = first_difference(a, b, EVAL_ONLY)
        if diff:
            sys.exit(f"error: recipes.{name}.trained_as: {diff[0]} is {diff[1]!r} here, {diff[2]!r} in "
                     f"{source!r} (only {', '.join(EVAL_ONLY)} may differ)")
    return source


def trained_as_generator(recipes: dict, name: str, variant: str, seed: int, base_path: Path):
    """``(G, run folder, that run's study row)`` for recipe ``name``'s row: the finished run of its
    ``trained_as`` recipe, its weights in a generator built with this recipe's model settings."""
    from dftnet.training.checkpoints import require_finished

    source = check_trained_as(recipes, name, base_path)
    run_dir = STUDY / "runs" / source / variant / f"seed{seed}"
    row_path = STUDY / "results" / f"{source}__{variant}__seed{seed}.json"
    require_finished(run_dir)
    if not row_path.is_file():
        raise FileNotFoundError(f"{row_path}: no study row for the trained run (learning_study.py run --only {source})")
    return generator_as(recipes, name, variant, seed, base_path, run_dir), run_dir, json.loads(row_path.read_text())


def generator_as(recipes: dict, name: str, variant: str, seed: int, base_path: Path, run_dir: Path):
    """The trained weights of ``run_dir`` in a generator built with recipe ``name``'s model
    settings (its eval-only ones included), in eval mode."""
    from dftnet.config import resolve_variant
    from dftnet.nets.generators import build_generator
    from dftnet.training.checkpoints import load_trained

    trained, _, _ = load_trained(run_dir)
    params = recipe_params(recipes, name, base_path)
    G = build_generator(resolve_variant(params, variant, seed).model, params.data.image_size)
    G.load_state_dict(trained.state_dict())
    return G.eval()


def run_record(recipe: str, variant: str, seed: int, run_dir: Path) -> tuple[int, dict]:
    """A finished study run's generator steps (its summary) and wall-clock record ({} if none)."""
    from dftnet.training.train import wall_clock_path

    clock = wall_clock_path(STUDY / "runs" / recipe, variant, seed)
    record = json.loads(clock.read_text()) if clock.is_file() else {}
    return json.loads((run_dir / "train_summary.json").read_text())["generator_steps"], record


def score_one(recipes: dict, name: str, variant: str, seed: int, base_path: str) -> dict:
    """Recipe ``name``'s row scored from its ``trained_as`` run (:func:`trained_as_generator`) on
    the validation pairs; the steps, seconds and curve are those of the checkpoint scored (its
    summary and wall-clock record: a run trained again, as by ``test``, is not the study row's)."""
    import torch

    torch.set_num_threads(1)
    from dftnet import stages
    from dftnet.eval.judge import load_judge

    G, run_dir, row = trained_as_generator(recipes, name, variant, seed, Path(base_path))
    ds, judge = stages.dataset(recipe_params(recipes, name, Path(base_path))), load_judge(ROOT / "judge" / "judge.pt")
    steps, record = run_record(row["recipe"], variant, seed, run_dir)
    seconds = record.get("train_seconds", row["seconds"])
    complete = record.get("complete", False) if record else row.get("seconds_complete", True)
    return write_result(name, variant, seed, run_dir, steps, seconds, score_on_pairs(G, ds, judge),
                        threads=row["threads"], seconds_complete=complete)


def run_one(recipes: dict, name: str, variant: str, seed: int, base_path: str) -> dict:
    if "trained_as" in recipes[name]:
        return score_one(recipes, name, variant, seed, base_path)
    import torch

    torch.set_num_threads(1)
    from dftnet import stages
    from dftnet.config import resolve_variant
    from dftnet.eval.judge import load_judge
    from dftnet.training.checkpoints import load_trained
    from dftnet.training.train import train, wall_clock_path

    params = recipe_params(recipes, name, Path(base_path))
    ds = stages.dataset(params)
    judge = load_judge(ROOT / "judge" / "judge.pt")
    out = STUDY / "runs" / name / variant / f"seed{seed}"
    run = resolve_variant(params, variant, seed)
    # The summary carries the wall-clock record: seconds summed over the run's sittings.
    summary = train(run, ds, out, "cpu", judge=judge, wall_clock=wall_clock_path(STUDY / "runs" / name, variant, seed))
    return write_result(name, variant, seed, out, summary["generator_steps"], round(summary["train_seconds"], 1),
                        score_on_pairs(load_trained(out)[0], ds, judge), threads=1,
                        seconds_complete=summary["complete"])


def score_on_pairs(G, ds, judge, split: str = "val") -> dict:
    """The judge's reading of ``G``'s edits of the ``split`` pairs (validation unless a frozen
    recipe's test read, :func:`cmd_test`), with both floors, the raise
    and lower progress (all AUs and AU45, beside the ground truth's), the paired L1 against the
    ground truth (whole image, raise mask, unchanged region, each beside the source's) and the
    unchanged region's error by part (:func:`dftnet.eval.response.unchanged_parts`)."""
    from dftnet.data.synth_dataset import neutral_faces
    from dftnet.eval.evaluate import edit_pairs
    from dftnet.eval.judge import judge_predict
    from dftnet.eval.paired import compute_paired
    from dftnet.eval.response import mask_l1, masks, nanmean, progress, unchanged_parts
    from dftnet.eval.schema import EYELID_AU

    pairs = ds.split_pairs(split)
    if pairs is None:
        sys.exit(f"error: {ds.meta.get('source')} dataset without {split} pairs: run `dvc repro prepare` again")
    sources, edits = edit_pairs(G, ds, 64, pairs=pairs)
    neutral = neutral_faces(ds, pairs.source_ids)
    target, labels = pairs.target_aus.float(), ds.aus[ds.index(pairs.source_ids)].float()
    images = {"edit": edits, "source": sources, "neutral": neutral, "gt": pairs.gt}
    read = {k: judge_predict(judge, x) for k, x in images.items()}
    err = {k: float((v - target).abs().mean()) for k, v in read.items()}
    prog = {k: progress(v, read["source"], target, labels) for k, v in read.items()}
    paired = {k: compute_paired(images[k], pairs.gt) for k in ("edit", "source")}
    l1 = {k: v["per_image"]["l1"] for k, v in paired.items()}
    l1_mean = {k: v["mean"]["l1"] for k, v in paired.items()}
    raise_mask, unchanged = masks(pairs.gt, sources, neutral)
    scores = {"au_mae": err["edit"], "au_mae_source": err["source"], "au_mae_neutral": err["neutral"],
              "au_mae_gt": err["gt"], "ratio": err["edit"] / err["source"], "ratio_neutral": err["edit"] / err["neutral"],
              "l1_gt": l1_mean["edit"], "l1_gt_source": l1_mean["source"], "l1_ratio": l1_mean["edit"] / l1_mean["source"],
              "n_pairs": len(pairs), "split": split}
    for way in ("raise", "lower"):
        for k in ("edit", "gt"):
            suffix = "" if k == "edit" else "_gt"
            scores[f"au_{way}{suffix}"] = prog[k][way]["mean"]
            scores[f"au45_{way}{suffix}"] = prog[k][way]["per_au"][EYELID_AU]
    per_pair = {f"l1_{name}" + ("" if k == "edit" else "_source"): mask_l1(images[k], pairs.gt, mask)
                for name, mask in (("raise", raise_mask), ("unchanged", unchanged)) for k in ("edit", "source")}
    scores.update({k: nanmean(v) for k, v in per_pair.items()})
    parts, _ = unchanged_parts(G, sources, pairs.target_aus, pairs.gt, unchanged, edits, 64, "cpu")
    scores.update({k: nanmean(v) for k, v in parts.items()})
    scores["unchanged_ratio"] = scores["l1_unchanged"] / scores["l1_unchanged_source"]
    scores["far_ratio"] = scores["l1_unchanged_far"] / scores["l1_unchanged_far_source"]
    if split == "test":  # the pixel errors per pair, for CIs over seeds and people across sittings
        who = dict(zip(ds.ids, ds.identities)) if ds.identities is not None else {}
        def finite(values: list[float]) -> list[float | None]:  # an empty mask's NaN as JSON's null
            return [v if math.isfinite(v) else None for v in values]

        scores["per_pair"] = {"source_identity": [who.get(i, i) for i in pairs.source_ids],
                              "l1_unchanged": finite(per_pair["l1_unchanged"]),
                              "l1_unchanged_source": finite(per_pair["l1_unchanged_source"]),
                              "l1_gt": l1["edit"], "l1_gt_source": l1["source"]}
    return scores


def write_result(recipe: str, variant: str, seed: int, run_dir: Path, steps: int, seconds: float, scores: dict,
                 threads, seconds_complete: bool = True) -> dict:
    """One study row, ``study/results/<recipe>__<variant>__seed<k>.json`` (written atomically):
    ``scores`` from :func:`score_on_validation`; the curve comes from ``run_dir/curve.csv``.
    ``seconds_complete`` is false when some of the run's sittings went untimed (``seconds`` is then
    a lower bound)."""
    curve = (run_dir / "curve.csv").read_text().splitlines()
    result = {"recipe": recipe, "variant": variant, "seed": seed, "steps": steps, "seconds": seconds,
              "seconds_complete": seconds_complete, **scores,
              "curve": [line.split(",")[:4] for line in curve[1:]], "threads": threads,
              "machine": f"{os.cpu_count()} CPU cores, {cpu_name()}"}
    path = STUDY / "results" / f"{recipe}__{variant}__seed{seed}.json"
    from dftnet.runtime import atomic

    atomic.write_text(path, json.dumps(result, indent=1))
    return result


def cmd_run(args) -> None:
    import yaml

    recipes = yaml.safe_load(Path(args.recipes).read_text())
    names = args.only or list(recipes)
    for n in names:
        if n not in recipes:
            sys.exit(f"error: {args.recipes}: no recipe {n!r}")
    run_jobs(recipes, names, args, run_one, STUDY / "results", "runs",
             lambda r: f"ratio {r['ratio']:.3f} l1 {r['l1_ratio']:.2f}x unchanged {r['unchanged_ratio']:.2f}x {r['seconds']:.0f} s")


def run_jobs(recipes: dict, names: list[str], args, fn, folder: Path, what: str, line) -> None:
    """Every (recipe, variant, seed) of ``names`` without its file in ``folder``, through ``fn`` in
    ``args.workers`` processes of one thread, after every recipe is checked; ``line(row)``
    reports each; one failed run does not lose the others."""
    for n in names:
        recipe_params(recipes, n, Path(args.params))  # validate before any training
        if "trained_as" in recipes[n]:
            check_trained_as(recipes, n, Path(args.params))
    jobs = [(n, v, s) for n in names for v in args.variants for s in args.seeds
            if v in recipes[n].get("variants", args.variants) and not (folder / f"{n}__{v}__seed{s}.json").exists()]
    print(f"{len(jobs)} {what} to do", file=sys.stderr)
    from dftnet.runtime.procs import die_with_parent

    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"), initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, recipes, n, v, s, args.params): (n, v, s) for n, v, s in jobs}
        for fut, job in futures.items():
            try:
                print(f"{job}: {line(fut.result())}", file=sys.stderr)
            except Exception as err:  # one failed run must not lose the others
                print(f"{job}: FAILED {type(err).__name__}: {err}", file=sys.stderr)


def test_one(recipes: dict, name: str, variant: str, seed: int, base_path: str) -> dict:
    """Frozen recipe ``name``'s run (its ``trained_as`` recipe's, if any), trained here first when
    its checkpoint is absent (another machine's run does not outlast it), scored on the **test**
    pairs and, the same model, on the validation pairs; written once to ``study/test/``."""
    import hashlib

    import torch

    torch.set_num_threads(1)
    from dftnet import stages
    from dftnet.config import resolve_variant
    from dftnet.eval.judge import load_judge
    from dftnet.runtime import atomic
    from dftnet.runtime.errors import DataError
    from dftnet.training.checkpoints import require_finished
    from dftnet.training.train import train, wall_clock_path

    source = recipes[name].get("trained_as", name)
    trained_params, params = recipe_params(recipes, source, Path(base_path)), recipe_params(recipes, name, Path(base_path))
    ds, judge_path = stages.dataset(params), ROOT / "judge" / "judge.pt"
    judge = load_judge(judge_path)
    run_dir, clock = STUDY / "runs" / source / variant / f"seed{seed}", wall_clock_path(STUDY / "runs" / source, variant, seed)
    try:
        require_finished(run_dir)
    except DataError:
        train(resolve_variant(trained_params, variant, seed), ds, run_dir, "cpu", judge=judge, wall_clock=clock)
    steps, record = run_record(source, variant, seed, run_dir)
    G = generator_as(recipes, name, variant, seed, Path(base_path), run_dir)
    val = score_on_pairs(G, ds, judge, "val")
    test = score_on_pairs(G, ds, judge, "test")
    row = {"recipe": name, "variant": variant, "seed": seed, "trained_as": source,
           "steps": steps, "seconds": record.get("train_seconds"),
           "seconds_complete": record.get("complete", False), **test, "val": val,
           "judge_md5": hashlib.md5(judge_path.read_bytes()).hexdigest(), "threads": 1,
           "machine": f"{os.cpu_count()} CPU cores, {cpu_name()}"}
    atomic.write_text(STUDY / "test" / f"{name}__{variant}__seed{seed}.json", json.dumps(row, indent=1))
    return row


def cpu_name() -> str:
    """The CPU's name with its family and model numbers (two "AMD EPYC" may be other chips, and a
    GAN's trajectory follows the chip: docs/reproducibility.md)."""
    info: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    if "model name" not in info:
        import platform

        return platform.processor() or "unknown CPU"
    return f"{info['model name']} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"


def cmd_test(args) -> None:
    """The test pairs of the **frozen** recipes (a ``frozen`` entry: when and on what validation
    evidence it was chosen), read once per run: a run with a file under ``study/test/`` is never
    scored again. The unit is one run, so the test read of a recipe spread over sittings or
    machines grows file by file like the study (a run whose checkpoint is gone trains again)."""
    import yaml

    recipes = yaml.safe_load(Path(args.recipes).read_text())
    names = args.only or [n for n in recipes if "frozen" in recipes[n]]
    for n in names:
        if n not in recipes:
            sys.exit(f"error: {args.recipes}: no recipe {n!r}")
        if "frozen" not in recipes[n]:
            sys.exit(f"error: {args.recipes}: recipe {n!r} is not frozen (its test pairs are read once it is "
                     "chosen: give it a `frozen:` line with the validation evidence)")
    run_jobs(recipes, names, args, test_one, STUDY / "test", "test reads",
             lambda r: f"test AU/neutral {r['au_mae'] / r['au_mae_neutral']:.2f} unchanged {r['unchanged_ratio']:.3f}x "
                       f"l1 {r['l1_ratio']:.2f}x")


# Settings that change how a run is logged or saved, not what it learns.
BOOKKEEPING = ("checkpoint_every", "log_every", "curve_every", "curve_pairs")


def _learning_settings(run: dict, prefix: str = "") -> dict:
    """A run config's settings that change what it learns, as dotted keys (``train.lambdas.idt``)."""
    flat = {}
    for key, value in run.items():
        if key in ("variant", "seed") or key in BOOKKEEPING:
            continue
        if isinstance(value, dict):
            flat.update(_learning_settings(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def first_difference(a: dict, b: dict, ignore: tuple[str, ...] = ()) -> tuple[str, object, object] | None:
    """``(key, a's value, b's value)`` for the first dotted learning setting
    (:func:`_learning_settings`) in which run configs ``a`` and ``b`` differ, but for ``ignore``;
    None when they train alike."""
    a, b = _learning_settings(a), _learning_settings(b)
    diff = [k for k in sorted(a.keys() | b.keys()) if k not in ignore and a.get(k) != b.get(k)]
    return (diff[0], a.get(diff[0]), b.get(diff[0])) if diff else None


def cmd_import(args) -> None:
    """Finished runs of a pipeline's work folder (``<work>/runs/<variant>/seed<k>/``, the generator,
    steps, learning curve; seconds from its wall-clock record) as rows of recipe ``--recipe``,
    scored on the validation pairs like every other row with that folder's judge. A run trained
    with settings other than the recipe's stops the import with one line naming the key; an
    unfinished run is skipped (named)."""

    import yaml

    from dftnet import stages
    from dftnet.config import load_params, resolve_variant
    from dftnet.eval.judge import load_judge
    from dftnet.training.checkpoints import load_trained
    from dftnet.training.train import wall_clock_path

    recipes = yaml.safe_load(Path(args.recipes).read_text())
    if args.recipe not in recipes:
        sys.exit(f"error: {args.recipes}: no recipe {args.recipe!r}")
    recipe = recipe_params(recipes, args.recipe, ROOT / "params.yaml")
    work, params = Path(args.work), load_params(args.params)
    todo = []
    for variant in params.variants:
        for seed in params.seeds:
            run = work / "runs" / variant / f"seed{seed}"
            if not stages.finished(run, params.train.epochs):
                print(f"skipped {run}: not finished", file=sys.stderr)
                continue
            trained = json.loads((run / "config.json").read_text())
            wanted = resolve_variant(recipe, variant, seed).to_dict()  # as config.json writes it
            diff = first_difference(trained, wanted)
            if diff:
                sys.exit(f"error: {run / 'config.json'}: {diff[0]} is {diff[1]!r}, recipe {args.recipe!r} has {diff[2]!r}")
            todo.append((variant, seed, run))
    if not todo:
        return
    ds, judge = stages.dataset(params), load_judge(work / "judge" / "judge.pt")
    for variant, seed, run in todo:
        train = json.loads((run / "train_summary.json").read_text())
        clock = wall_clock_path(work / "runs", variant, seed)
        record = json.loads(clock.read_text()) if clock.exists() else {}
        seconds = record.get("train_seconds", record.get("train_seconds_this_session"))  # older records: one sitting
        write_result(args.recipe, variant, seed, run, train["generator_steps"], seconds,
                     score_on_pairs(load_trained(run)[0], ds, judge),
                     threads=getattr(args, "threads", f"{args.work}'s pipeline (one thread a run, seeds in parallel)"),
                     seconds_complete=record.get("complete", True))
        print(f"{args.recipe} {variant} seed{seed}")


def cmd_export(args) -> None:
    """Finished study runs of recipe ``--recipe`` (variant ``--variant``, the pipeline's seeds) as
    runs of variant ``--as`` in the pipeline ``--params`` / ``--work``: the inverse of
    :func:`cmd_import`, so that a pipeline evaluates on its test pairs the runs its recipe was
    chosen by, instead of training them again. The two must train alike: the same learning
    settings but for :data:`EVAL_ONLY` ones, and the same data settings (``data.root`` aside);
    otherwise one line names the key and nothing is written. The checkpoint is copied with the
    pipeline's config written into it (the weights and training state untouched), with its log,
    curve, summary and wall-clock record; a pipeline run folder that exists is left alone."""
    import dataclasses
    import shutil

    import torch
    import yaml

    from dftnet.config import load_params, resolve_variant
    from dftnet.runtime import atomic
    from dftnet.runtime.errors import DataError
    from dftnet.training.checkpoints import CHECKPOINT, read_checkpoint, require_finished
    from dftnet.training.train import wall_clock_path

    recipes = yaml.safe_load(Path(args.recipes).read_text())
    if args.recipe not in recipes or "trained_as" in recipes[args.recipe]:
        sys.exit(f"error: {args.recipes}: no recipe {args.recipe!r} that trains")
    study, pipeline = recipe_params(recipes, args.recipe, ROOT / "params.yaml"), load_params(args.params)
    if args.as_variant not in pipeline.variants:
        sys.exit(f"error: {args.params}: no variant {args.as_variant!r}")
    ours, theirs = dataclasses.asdict(study.data), dataclasses.asdict(pipeline.data)
    for key in sorted((ours.keys() | theirs.keys()) - {"root"}):
        if ours.get(key) != theirs.get(key):
            sys.exit(f"error: {args.params}: data.{key} differs from the study's ({args.recipe!r} trained on other faces)")
    work, todo = Path(args.work), []
    for seed in pipeline.seeds:  # every check before anything is written
        src = STUDY / "runs" / args.recipe / args.variant / f"seed{seed}"
        dst = work / "runs" / args.as_variant / f"seed{seed}"
        try:
            require_finished(src)
        except DataError as err:
            sys.exit(f"error: {err}")
        wanted = resolve_variant(pipeline, args.as_variant, seed).to_dict()
        trained = json.loads((src / "config.json").read_text())
        diff = first_difference(trained, wanted, EVAL_ONLY)
        if diff:
            sys.exit(f"error: {src / 'config.json'}: {diff[0]} is {diff[1]!r}, "
                     f"{args.params} variant {args.as_variant!r} has {diff[2]!r}")
        if dst.exists():
            print(f"skipped {dst}: exists", file=sys.stderr)
        else:
            todo.append((seed, src, dst, wanted))
    for seed, src, dst, wanted in todo:
        ckpt = read_checkpoint(src / CHECKPOINT)
        ckpt["config"] = wanted
        tmp = dst.with_name(f".{dst.name}.export")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save(ckpt, tmp / CHECKPOINT)
        for name in ("log.csv", "curve.csv"):
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        (tmp / "config.json").write_text(json.dumps(wanted, indent=2))
        summary = json.loads((src / "train_summary.json").read_text())
        (tmp / "train_summary.json").write_text(json.dumps({**summary, "variant": args.as_variant}, indent=2))
        (tmp / "exported_from.json").write_text(json.dumps({"recipe": args.recipe, "variant": args.variant,
                                                            "seed": seed}, indent=2))
        clock = wall_clock_path(STUDY / "runs" / args.recipe, args.variant, seed)
        if clock.is_file():
            atomic.write_text(wall_clock_path(work / "runs", args.as_variant, seed), clock.read_text())
        tmp.rename(dst)
        print(f"{src} -> {dst}")


def cmd_import_default(args) -> None:
    """The default ``dvc repro``'s trained runs (every variant and seed) as rows of recipe
    ``default``: :func:`cmd_import` of this folder."""
    args.work, args.recipe, args.params = str(ROOT), "default", str(ROOT / "params.yaml")
    args.threads = "dvc repro (seeds in parallel; the last seed of each variant on both cores)"
    cmd_import(args)


def meets_targets(r: dict) -> bool | None:
    """The edit-quality targets on one validation row (None: a row scored before they existed):
    unchanged-region L1 <= 2x the source's, raise progress >= 0.8x the ground truth's, AU45 raise
    and lower progress each >= 0.5x the ground truth's, AU error <= 0.75x the neutral face's,
    overall L1 below the source's."""
    if r.get("unchanged_ratio") is None:
        return None
    return (r["unchanged_ratio"] <= TARGET_UNCHANGED and r["au_raise"] >= TARGET_RAISE * r["au_raise_gt"]
            and r["au45_raise"] >= TARGET_AU45 * r["au45_raise_gt"] and r["au45_lower"] >= TARGET_AU45 * r["au45_lower_gt"]
            and r["au_mae"] <= TARGET_NEUTRAL * r["au_mae_neutral"] and r["l1_ratio"] < 1)


def cmd_rescore(args) -> None:
    """Score every study run whose checkpoint is still under ``study/runs/`` again, with the
    current measures (its steps, seconds and curve kept): rows gain measures added later."""
    import yaml

    from dftnet import stages
    from dftnet.runtime import atomic
    from dftnet.training.checkpoints import load_trained
    from dftnet.config import load_params
    from dftnet.eval.judge import load_judge

    recipes = yaml.safe_load(Path(args.recipes).read_text())
    ds, judge = stages.dataset(load_params(args.params)), load_judge(ROOT / "judge" / "judge.pt")
    for path in sorted((STUDY / "results").glob("*.json")):
        row = json.loads(path.read_text())
        trained_as = recipes.get(row["recipe"], {}).get("trained_as")
        run = STUDY / "runs" / (trained_as or row["recipe"]) / row["variant"] / f"seed{row['seed']}"
        if row.get("split") != "val" or not (run / "checkpoint.pt").exists():
            continue
        G = (trained_as_generator(recipes, row["recipe"], row["variant"], row["seed"], Path(args.params))[0]
             if trained_as else load_trained(run)[0])
        row.update(score_on_pairs(G, ds, judge))
        atomic.write_text(path, json.dumps(row, indent=1))
        print(f"rescored {path.name}", file=sys.stderr)


def _table_row(name: str, what: str, variant: str, split: str, rows: list[dict]) -> str:
    def mean(k: str, rel: str | None = None) -> str:
        vals = [r[k] / (r[rel] if rel else 1) for r in rows if r.get(k) is not None and (rel is None or r.get(rel))]
        return f"{sum(vals) / len(vals):.2f}" if vals else ""

    def per_seed(k: str) -> str:
        return ", ".join(f"{r[k]:.2f}" for r in rows if r.get(k) is not None)

    verdicts = [meets_targets(r) for r in rows]
    met = "n/a" if None in verdicts else ("yes" if all(verdicts) else "no")
    unch = f"{mean('unchanged_ratio')} ({per_seed('unchanged_ratio')})" if rows[0].get("unchanged_ratio") else ""
    at_least = "> " if any(r.get("seconds_complete") is False for r in rows) else ""
    return (f"| {name} | {what} | {variant} | {split} | {rows[0]['steps']} | {at_least}{float(mean('seconds')):.0f} "
            f"| {mean('au_mae', 'au_mae_neutral')} | {mean('au_raise', 'au_raise_gt')} | {mean('au45_raise', 'au45_raise_gt')} "
            f"| {mean('au45_lower', 'au45_lower_gt')} | {unch} | {mean('l1_ratio')} ({per_seed('l1_ratio')}) "
            f"| {mean('flow_unchanged')} | {mean('synth_unchanged')} | {mean('copied_unchanged')} "
            f"| {mean('ratio')} | {met} ({len(rows)} seed{'s' if len(rows) > 1 else ''}) |")


def cmd_table(args) -> None:
    import yaml

    recipes = yaml.safe_load(Path(args.recipes).read_text())
    results = [json.loads(p.read_text()) for p in sorted((STUDY / "results").glob("*.json"))]
    lines = [
        "# Learning study",
        "",
        "Which recipe makes the generators *edit* at CPU scale (64 px, the embedded synthetic faces,",
        "320 training images of 32 identities; scored on the 120 **validation** pairs of 12 other people). Written by",
        "`python benchmarks/learning_study.py table` from `study/results/*.json`; every row is a run",
        f"seen on this machine ({os.cpu_count()} CPU cores, no GPU, one thread per run, two runs side by side;",
        "the rows of the pipelines' own runs, `default` (the default `dvc repro`) and `cpu_xl` (`make cpu-xl`),",
        "are imported with `import` and scored the same way, by that pipeline's judge (same settings, same faces)).",
        "What the rows mean for the default recipe: docs/recipe.md.",
        "",
        "Columns (means over seeds; per-seed values in brackets):",
        "",
        "- **AU / neutral** = the judge's AU error of the edits / that of the neutral faces (the source people",
        f"  with every AU at 0: erasing the expression scores 1). Target <= {TARGET_NEUTRAL}.",
        "- **raise / GT**, **AU45 raise / GT**, **AU45 lower / GT** = the share of each asked AU change the",
        "  judge reads in the edit, over the share it reads in the ground truth (the true edit).",
        f"  Targets >= {TARGET_RAISE}, >= {TARGET_AU45}, >= {TARGET_AU45}.",
        "- **unch. x** = L1 to the ground truth where it equals the source (within 0.05) / the unedited",
        f"  source's L1 there: 1 = no artifact. Target <= {TARGET_UNCHANGED}.",
        "- **L1 x** = L1 to the ground truth over the whole image / the unedited source's. Target < 1.",
        "- **flow px**, **1-A**, **copied**: where the unchanged region's error comes from: the mean flow",
        "  length there (DFT-Net), the weight of the synthesised image there, and the share of its pixels",
        "  copied exactly from the source.",
        "- **ratio** = AU error / the unedited source's (the old floor, kept for the history rows).",
        "- **met**: every seed meets every target (`n/a`: a row scored before the targets existed).",
        "- **split**: `val` rows were scored on the validation pairs. `test*` rows were scored on the test",
        "  pairs before the validation split existed, with the judge of that time (trained on the GANs' own",
        "  images); their checkpoints are gone, so they stand as history, not comparable with `val` rows.",
        "- `steps` generator steps; `s` wall seconds per run (mean), indicative only: the machine's load",
        "  varied between rounds (tests and other runs shared the cores at times); `> s`: a run resumed",
        "  after a sitting that was not timed, so only a lower bound.",
        "",
        "| recipe | what changes | variant | split | steps | s | AU / neutral | raise / GT | AU45 raise / GT "
        "| AU45 lower / GT | unch. x (per seed) | L1 x (per seed) | flow px | 1-A | copied | ratio | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        r.setdefault("split", "test*")
    for name in recipes:
        for variant in dict.fromkeys(r["variant"] for r in results):
            for split in ("val", "test*"):
                rows = sorted((r for r in results if r["recipe"] == name and r["variant"] == variant
                               and r["split"] == split), key=lambda r: r["seed"])
                if rows:
                    lines.append(_table_row(name, recipes[name].get("what", ""), variant, split, rows))
    lines += ["", "## Learning curves (judge ratio every 300 generator steps and at the end, mean over seeds)", "",
              "| recipe | variant | " + " | ".join(["step: ratio"] * 1) + " |", "|---|---|---|"]
    for name in recipes:
        for variant in dict.fromkeys(r["variant"] for r in results):
            rows = [r for r in results if r["recipe"] == name and r["variant"] == variant]
            if not rows:
                continue
            steps = [c[0] for c in rows[0]["curve"]]
            pts = []
            for i, s in enumerate(steps):
                if int(s) % 300 and i != len(steps) - 1:  # every 300 steps and the last point
                    continue
                vals = [float(r["curve"][i][3]) for r in rows if len(r["curve"]) > i]
                pts.append(f"{s}: {sum(vals) / len(vals):.2f}")
            lines.append(f"| {name} | {variant} | {', '.join(pts)} |")
    lines += test_section(recipes)
    out = ROOT / "reports" / "learning_study.md"
    from dftnet.runtime import atomic

    atomic.write_text(out, "\n".join(lines) + "\n")
    print(out)


def test_section(recipes: dict) -> list[str]:
    """The frozen recipes' test rows (:func:`cmd_test`), one line per run, and each ``compare``
    (claim 2: the unchanged region's L1, paired by seed and test pair, crossed-t 95% CI)."""
    import numpy as np

    from dftnet.eval.stats import crossed_t_interval

    rows = [json.loads(p.read_text()) for p in sorted((STUDY / "test").glob("*.json"))]
    lines = ["", "## Test pairs: the frozen recipes, each run read once", "",
             "`python benchmarks/learning_study.py test` scores a **frozen** recipe's run (its `frozen:` line in",
             "`benchmarks/recipes.yaml` says when and on what validation evidence it was chosen) on the 120 test",
             "pairs of 12 other people, once: a run with a file under `study/test/` is never read again. A run",
             "whose checkpoint is gone trains again first, so `val met` is that same model's validation verdict.",
             "A GAN's trajectory and the judge's build follow the CPU (docs/reproducibility.md): each row names",
             "its machine and judge; the pixel errors (unch. x, L1 x) need no judge.", ""]
    if not rows:
        return lines + ["No test read yet."]
    lines += ["| recipe | variant | seed | steps | AU / neutral | raise / GT | AU45 raise / GT | AU45 lower / GT "
              "| unch. x | L1 x | met | val met | machine; judge |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def yes(v: bool | None) -> str:
        return "n/a" if v is None else ("yes" if v else "no")

    for name in recipes:
        for r in sorted((r for r in rows if r["recipe"] == name), key=lambda r: (r["variant"], r["seed"])):
            lines.append(f"| {name} | {r['variant']} | {r['seed']} | {r['steps']} | {r['au_mae'] / r['au_mae_neutral']:.2f} "
                         f"| {r['au_raise'] / r['au_raise_gt']:.2f} | {r['au45_raise'] / r['au45_raise_gt']:.2f} "
                         f"| {r['au45_lower'] / r['au45_lower_gt']:.2f} | {r['unchanged_ratio']:.3f} | {r['l1_ratio']:.2f} "
                         f"| {yes(meets_targets(r))} | {yes(meets_targets(r['val']))} | {r['machine']}; {r['judge_md5'][:8]} |")
    for name in recipes:
        if "compare" not in recipes[name]:
            continue
        other, other_variant = recipes[name]["compare"].split("/")
        for variant in recipes[name].get("variants", ["dftnet", "ganimation"]):
            if (name, variant) == (other, other_variant):
                continue
            mine = {r["seed"]: r for r in rows if r["recipe"] == name and r["variant"] == variant}
            theirs = {r["seed"]: r for r in rows if r["recipe"] == other and r["variant"] == other_variant}
            seeds = sorted(mine.keys() & theirs.keys())
            what = f"{name} {variant} - {other} {other_variant}"
            if not seeds:
                lines += ["", f"Claim 2 on the test pairs, {what}: no seed read for both yet."]
                continue
            people = mine[seeds[0]]["per_pair"]["source_identity"]
            diff = np.array([np.array(mine[s]["per_pair"]["l1_unchanged"], dtype=float)
                             - np.array(theirs[s]["per_pair"]["l1_unchanged"], dtype=float) for s in seeds])
            ci = crossed_t_interval(diff, people)
            lo, hi = ci["ci"]
            verdict = "lower" if hi < 0 else "higher" if lo > 0 else "inconclusive"
            if len(seeds) < 2:  # the interval would hold the people's spread alone, not the seeds'
                verdict = "no verdict until a second seed is read (one seed's interval leaves out the seeds' spread)"
            lines += ["", f"Claim 2 (fewer artifacts) on the test pairs, unchanged-region L1, {what}: "
                          f"{ci['estimate']:+.5f} [{lo:+.5f}, {hi:+.5f}] (95% CI, crossed t, {ci['n_seeds']} seed(s) "
                          f"{', '.join(map(str, seeds))} x {ci['n_pairs']} pairs of {ci['n_clusters']} people): {verdict}."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("run", "test", "import", "import-default", "export", "rescore", "table"))
    ap.add_argument("--recipes", default=str(ROOT / "benchmarks" / "recipes.yaml"))
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--variants", nargs="*", default=["dftnet", "ganimation"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", default=str(ROOT), help="import: the pipeline's work folder (runs/, judge/)")
    ap.add_argument("--recipe", default="default", help="import: the recipe the runs are filed under; "
                    "export: the recipe whose runs go to the pipeline")
    ap.add_argument("--variant", default="dftnet", help="export: the study runs' variant")
    ap.add_argument("--as", dest="as_variant", help="export: the pipeline variant they become")
    args = ap.parse_args()
    os.chdir(ROOT)
    {"run": cmd_run, "test": cmd_test, "import": cmd_import, "import-default": cmd_import_default, "export": cmd_export,
     "rescore": cmd_rescore, "table": cmd_table}[args.command](args)


if __name__ == "__main__":
    main()
