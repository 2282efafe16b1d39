"""The scale targets, measured on this machine's device at the paper's scale, written as a report.

    python benchmarks/bench_targets.py --out reports/gpu.md                 # on a CUDA machine
    python benchmarks/bench_targets.py --device cpu --out /tmp/targets.md   # the CPU figures

At the paper's scale (``params-paper.yaml``: 128 px, base 64, 6 residual blocks, the
GANimation critic, batch 25, n_critic 5), with the params' fast path (:mod:`dftnet.nets.accel`):

1. **Inference** of DFT-Net's generator (:func:`dftnet.eval.timing.time_generator`: eval mode,
   warm-up, median over runs; CUDA events on a GPU), at batch 1 and batched; on CUDA also
   replayed from a CUDA graph.
2. **Training**: this suite's loop (:func:`dftnet.training.train.train`) against a loop written the way
   the official GANimation trains (``benchmarks/bench_train.py``: fp32, a DataLoader decoding
   JPEGs every step, ``.item()`` every step), same networks, losses, batch and device, on
   random 128 px faces. Images through the critic per second, warm-up excluded.
3. **The paper's schedule**: 30 epochs over ``--dataset-images`` images (EmotioNet as
   GANimation used it: 200,000), extrapolated from (2) at the measured rate.

Every figure is printed and written to ``--out`` with the device's name, the torch version, N
and the settings; the targets (an H100-class GPU's) stand beside them with met / not met.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import our_loop_images_per_second, reference_loop_images_per_second  # noqa: E402

from dftnet.nets import accel  # noqa: E402
from dftnet.config import load_params, resolve_variant  # noqa: E402
from dftnet.data.dataset import FaceDataset  # noqa: E402
from dftnet.eval.timing import device_name, time_generator  # noqa: E402
from dftnet.nets.generators import build_generator  # noqa: E402
from dftnet.runtime.numerics import pick_device  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"b1_ms": 1.0, "batched_images_per_s": 10_000, "train_ratio": 5.0, "schedule_hours": 1.0}


def paper_run(params_path: Path, epochs: int):
    params = load_params(params_path)
    run = resolve_variant(params, "dftnet", 0)
    t = dataclasses.replace(run.train, epochs=epochs, decay_epochs=0, curve_every=0, checkpoint_every=epochs,
                            log_every=1)
    return params, dataclasses.replace(run, train=t)


def random_faces(n: int, size: int, seed: int = 0) -> FaceDataset:
    g = torch.Generator().manual_seed(seed)
    ids = [f"face{k:05d}" for k in range(n)]
    return FaceDataset(ids=ids, images=torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
                       aus=torch.rand(n, 17, generator=g) * 5, train_ids=ids, test_ids=ids[:1])


def inference(run, device: torch.device, fast, batch: int, runs: int, warmup: int) -> dict:
    torch.manual_seed(0)
    G = build_generator(run.model, run.image_size).to(device)
    sizes = (1, batch)
    out = {"eager": time_generator(G, run.image_size, sizes, runs, warmup, device, fast=fast)}
    if device.type == "cuda":
        out["graphs"] = time_generator(G, run.image_size, sizes, runs, warmup, device, fast=fast, graphs=True)
    return out


def training(params, run, device: torch.device, n_images: int, workers: int) -> dict:
    ds = random_faces(n_images, run.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ours = our_loop_images_per_second(run, ds, Path(tmp), str(device), params.compute)
        t1 = time.perf_counter()
        ref = reference_loop_images_per_second(run, ds, Path(tmp), workers, str(device))
        t2 = time.perf_counter()
    return {"ours": ours, "reference": ref, "ratio": ours / ref, "ours_seconds": t1 - t0, "reference_seconds": t2 - t1}


def verdict(value: float, target: float, lower_is_better: bool) -> str:
    ok = value <= target if lower_is_better else value >= target
    return "met" if ok else "not met"


def render(meta: dict, inf: dict, tr: dict, hours: float, batch: int) -> str:
    best = min(v["b1"]["ms_per_batch_median"] for v in inf.values())
    b = f"b{batch}"
    batched = max(batch / v[b]["ms_per_batch_median"] * 1000 for v in inf.values())
    rows = [
        (f"DFT-Net inference, {meta['size']} px, batch 1", f"<= {TARGETS['b1_ms']:g} ms", f"{best:.3f} ms",
         verdict(best, TARGETS["b1_ms"], True)),
        (f"DFT-Net inference, {meta['size']} px, batch {batch}", f">= {TARGETS['batched_images_per_s']:,} images/s",
         f"{batched:,.0f} images/s", verdict(batched, TARGETS["batched_images_per_s"], False)),
        ("training, ours / reference-style loop", f">= {TARGETS['train_ratio']:g}x",
         f"{tr['ratio']:.2f}x ({tr['ours']:.1f} vs {tr['reference']:.1f} images/s)",
         verdict(tr["ratio"], TARGETS["train_ratio"], False)),
        (f"the paper's 30 epochs of {meta['dataset_images']:,} images (extrapolated)", f"<= {TARGETS['schedule_hours']:g} h",
         f"{hours:.1f} h", verdict(hours, TARGETS["schedule_hours"], True)),
    ]
    lines = [f"# Scale targets on {meta['device_name']}", "",
             f"`benchmarks/bench_targets.py`, {meta['date']}: device `{meta['device']}` ({meta['device_name']}), "
             f"torch {meta['torch']}, fast path {meta['fast']}. Targets: an H100-class GPU's (issue 15).", "",
             "| what | target | measured | |", "|---|---|---|---|"]
    lines += [f"| {a} | {t} | {m} | {v} |" for a, t, m, v in rows]
    lines += ["", "## Inference (median over the runs, inter-quartile range)", "",
              "| mode | batch | ms per batch | IQR | images/s |", "|---|---|---|---|---|"]
    for mode, res in inf.items():
        for key in ("b1", b):
            r = res[key]
            lines.append(f"| {mode} | {r['batch_size']} | {r['ms_per_batch_median']:.3f} | {r['ms_per_batch_iqr']:.3f} | "
                         f"{r['batch_size'] / r['ms_per_batch_median'] * 1000:,.0f} |")
    p = next(iter(inf.values()))["protocol"]
    lines += ["", f"Timer: {p['timer']}; {p['runs']} runs after {p['warmup']} warm-up passes; {p['pass']}.", "",
              "## Training", "",
              f"{meta['train_images']} random {meta['size']} px faces, generator base {meta['base']}, "
              f"{meta['blocks']} residual blocks, {meta['epochs']} epochs, batch {meta['batch']}, n_critic "
              f"{meta['n_critic']}. Ours: `dftnet.training.train.train` with the fast path above, the median of its log rows "
              f"after the first epoch ({tr['ours_seconds']:.0f} s in all, start-up and any compilation included). "
              f"Reference-style: fp32, a DataLoader decoding JPEGs (workers: {meta['workers']}), `.item()` every step, first 2 "
              f"iterations untimed ({tr['reference_seconds']:.0f} s).", "",
              f"The paper's schedule: 30 x {meta['dataset_images']:,} / {tr['ours']:.1f} images/s = {hours:.1f} h "
              "(an extrapolation from the measured rate, not a 30-epoch run).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params-paper.yaml"))
    ap.add_argument("--device", default=None, help="cuda / cpu (default: cuda where present)")
    ap.add_argument("--batch", type=int, default=0, help="batched inference size (default: 512 on CUDA, 16 on the CPU)")
    ap.add_argument("--runs", type=int, default=0, help="timed inference passes (default: 200 on CUDA, 10 on the CPU)")
    ap.add_argument("--train-images", type=int, default=0,
                    help="random faces per epoch (default: 2,000 on CUDA, 125 on the CPU: 5 iterations of 25)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers of the reference-style loop")
    ap.add_argument("--dataset-images", type=int, default=200_000, help="images per epoch of the paper's schedule")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="", help="write the Markdown report here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (512 if cuda else 16)
    runs = args.runs or (200 if cuda else 10)
    n_images = args.train_images or (2000 if cuda else 125)
    params, run = paper_run(Path(args.params), args.epochs)
    fast = accel.resolve(params.compute, device)
    inf = inference(run, device, fast, batch, runs, warmup=max(3, runs // 10))
    for mode, res in inf.items():
        print(f"inference {mode}: b1 {res['b1']['ms_per_batch_median']:.3f} ms, b{batch} "
              f"{batch / res[f'b{batch}']['ms_per_batch_median'] * 1000:,.0f} images/s")
    tr = training(params, run, device, n_images, args.workers)
    hours = 30 * args.dataset_images / tr["ours"] / 3600
    print(f"training: ours {tr['ours']:.1f} images/s, reference-style {tr['reference']:.1f}: {tr['ratio']:.2f}x; "
          f"30 epochs of {args.dataset_images:,} images: {hours:.1f} h")
    meta = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "fast": ", ".join(f"{k}={v}" for k, v in fast.to_dict().items()), "date": time.strftime("%Y-%m-%d"),
            "dataset_images": args.dataset_images, "train_images": n_images, "epochs": args.epochs,
            "batch": run.train.batch_size, "size": run.image_size, "base": run.model.base_channels,
            "blocks": run.model.n_res_blocks, "n_critic": run.train.n_critic, "workers": args.workers}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(render(meta, inf, tr, hours, batch), encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
