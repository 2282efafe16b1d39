"""Training throughput and generator cost of each variant on this machine.

    python benchmarks/bench_train.py [--params params.yaml] [--iterations 20] [--threads 1] [--loop-epochs 5]

For every variant in the params file: parameters and forward GFLOPs per image of the
generator (at the params' size and at the paper's 128 px / base 64 / 6 blocks), and the
images per second through one full training iteration (critic step every iteration, the
generator step amortised over ``n_critic``), measured on random batches, and the generator
steps per second this gives, with the exact stem speed-up (``dftnet.nets.blocks.conv_over_tiled_aus``)
and with the plain convolution over the tiled AUs it replaces ("before"). Prints one line
per variant (stdout); not a test, since timings depend on the machine and its load.

``--loop-epochs N`` adds the whole training loop (:func:`dftnet.training.train.train`, with the params'
fast path) against a loop written the way the official GANimation trains (fp32, a DataLoader
decoding JPEGs every step, every loss read to the host every step), same model, losses, batch
and device, and prints the ratio. ``benchmarks/bench_targets.py`` does the same at the paper's
scale and writes the report.
"""

import argparse
import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dftnet.nets import blocks

from dftnet.config import load_params, resolve_variant
from dftnet.nets.generators import at_paper_size, generator_cost
from dftnet.data.imageops import aus_to_model
from dftnet.runtime.numerics import pick_device
from dftnet.training.train import build_state, critic_terms, generator_terms, train, weighted_total


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


def our_loop_images_per_second(run, ds, workdir: Path, device: str = "cpu", compute=None) -> float:
    """``dftnet.training.train.train`` itself: the split on the device, batches drawn there, losses read
    once per log row, the fast path of ``compute`` (:mod:`dftnet.nets.accel`). Images through the
    critic per second: the median over the log rows after the first epoch (warm-up and
    ``torch.compile`` excluded)."""
    import pandas as pd

    by_step = train(run, ds, workdir / "ours", device, compute=compute)["images_per_s_by_step"]
    log = pd.read_csv(workdir / "ours" / "log.csv")  # the steps of each epoch (the log holds no clock)
    later = log[log["epoch"] > 0] if (log["epoch"] > 0).any() else log
    return float(pd.Series([by_step[str(s)] for s in later["step"]]).median())


class JpegFolder(torch.utils.data.Dataset):
    """The official GANimation's data path: one JPEG decoded per image per step, flipped at random."""

    def __init__(self, folder: Path, ids: list, aus: torch.Tensor):
        self.files, self.aus = [folder / f"{i}.jpg" for i in ids], aus

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        x = torch.from_numpy(np.array(Image.open(self.files[i]).convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.aus[i]


def reference_loop_images_per_second(run, ds, workdir: Path, workers: int, device: str = "cpu",
                                     warmup: int = 2) -> float:
    """A loop written the way the official GANimation trains: fp32, a DataLoader decoding JPEGs
    every step and copying each batch to the device, every loss read to the host every step
    (``.item()``), the same model, losses and batch. The first ``warmup`` iterations are not timed."""
    folder = workdir / "jpegs"
    folder.mkdir(parents=True, exist_ok=True)
    idx = ds.train_idx
    for i in idx.tolist():
        Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(folder / f"{ds.ids[i]}.jpg", quality=95)
    aus = aus_to_model(ds.aus[idx])
    loader = torch.utils.data.DataLoader(JpegFolder(folder, [ds.ids[i] for i in idx.tolist()], aus),
                                         batch_size=run.train.batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers)
    dev = torch.device(device)
    state, t = build_state(run, dev), run.train
    images, seen, start = 0, 0, time.perf_counter()
    for _ in range(t.epochs):
        for k, (x, y_s) in enumerate(loader):
            if seen == warmup:
                images, start = 0, time.perf_counter()
            seen += 1
            x, y_s = x.to(dev), y_s.to(dev)
            y_t = y_s[torch.randperm(len(y_s), device=dev)]
            state.opt_D.zero_grad()
            d = critic_terms(state, x, y_s, y_t, t.lambdas)
            weighted_total(d, t.lambdas, t.batch_size).backward()
            state.opt_D.step()
            logged = {n: v.item() for n, v in d.items()}  # the host sync of every step
            if (k + 1) % t.n_critic == 0:
                state.opt_G.zero_grad()
                g = generator_terms(state, x, y_s, y_t, t.lambdas)
                weighted_total(g, t.lambdas, t.batch_size).backward()
                state.opt_G.step()
                logged.update({n: v.item() for n, v in g.items()})
            images += len(x)
    if seen <= warmup:
        raise ValueError(f"reference loop: {seen} iterations, none timed after {warmup} of warm-up; train longer")
    return images / (time.perf_counter() - start)


def loop_comparison(params, variant: str, epochs: int, workers: int, device: str = "cpu") -> None:
    """Our loop against the reference-style loop on the params' dataset: images per second and the ratio."""
    import tempfile

    from dftnet.data.canonical import load_dataset

    run = resolve_variant(params, variant, params.seeds[0])
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, epochs=epochs, decay_epochs=0,
                                                               curve_every=0, checkpoint_every=epochs))
    ds = load_dataset(params.data.root)
    with tempfile.TemporaryDirectory() as tmp:
        ours = our_loop_images_per_second(run, ds, Path(tmp), device, params.compute)
        ref = reference_loop_images_per_second(run, ds, Path(tmp), workers, device)
    print(f"loop {variant}: ours {ours:.1f} img/s, reference-style (fp32, JPEG DataLoader with {workers} workers, "
          f".item() every step) {ref:.1f} img/s: {ours / ref:.2f}x ({epochs} epochs of {len(ds.train_ids)} images, "
          f"batch {run.train.batch_size}, {device})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--loop-epochs", type=int, default=0,
                    help="also time dftnet.training.train against a reference-style loop for this many epochs (needs data.root)")
    ap.add_argument("--loader-workers", type=int, default=1, help="DataLoader workers of the reference-style loop")
    ap.add_argument("--device", default=None, help="for --loop-epochs: cuda / cpu (default: cuda where present)")
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
    if args.loop_epochs:
        loop_comparison(params, "dftnet", args.loop_epochs, args.loader_workers, str(pick_device(args.device)))


if __name__ == "__main__":
    main()
