"""The WGAN-GP trainer shared by DFT-Net, its ablations and the GANimation baseline.

One loop for every variant: the generator family and the regularisers come from the
resolved config, the lambdas are applied in one place (:func:`weighted_total`), and a term
whose lambda is 0 is never computed. As GANimation's official code, the critic is trained
every iteration and the generator every ``n_critic``-th.

Reproducibility: all randomness of the loop (shuffling, flips, target AUs, AU noise,
gradient-penalty interpolation) comes from one ``torch.Generator`` on the training device,
whose state is checkpointed with the networks, optimisers, schedulers and counters.
Checkpoints fall on epoch boundaries, so a run killed at any moment and resumed from its
last checkpoint ends with the same weights as an uninterrupted one (bit-exact on CPU).

Host synchronisation: the data live on the device, indexing and random draws happen
there, and loss values are stacked on the device; the host reads them once per log row.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, cast

import torch
from torch import nn

from dftnet.runtime import atomic, csvlog
from dftnet.training import distributed
from dftnet.nets import accel, losses
from dftnet.nets.accel import Fast
from dftnet.nets.blocks import GeneratorOutput
from dftnet.config import ComputeConfig, LambdaConfig, RunConfig, TrainConfig
from dftnet.training.curve import CURVE, LearningCurve
from dftnet.data.dataset import FaceDataset
from dftnet.training.distributed import World
from dftnet.runtime.errors import DataError, TrainingDiverged
from dftnet.data.imageops import aus_to_model, to_model
from dftnet.nets.losses import D_TERMS, G_TERMS, OPTIONAL_G_TERMS
from dftnet.training.checkpoints import CHECKPOINT, TrainState, read_checkpoint, restore, save_checkpoint
from dftnet.nets.generators import build_critic, build_generator
from dftnet.runtime.numerics import pick_device

LOG = "log.csv"
LOG_COLUMNS = ("step", "epoch", "lr") + D_TERMS + G_TERMS


def log_columns(lam: LambdaConfig) -> tuple[str, ...]:
    """The log's columns: every term of the papers, and an optional remedy's only when it is on."""
    return LOG_COLUMNS + tuple(k for k in OPTIONAL_G_TERMS if getattr(lam, k.split("_", 1)[1]))

# Wall-clock values (throughput, seconds) differ between identical runs, so they stay out of the
# run folder (a hashed DVC output): see :func:`wall_clock_path`. A run trained over several
# sittings (``epochs_this_session``, a stopped job resumed) keeps one record, rewritten at every
# checkpoint: ``sittings`` lists each sitting's checkpointed epochs and seconds (the minutes
# after a sitting's last checkpoint are lost work, retrained next time, and not counted);
# ``train_seconds`` sums them; ``complete`` says that every epoch up to ``through_epoch`` was timed
# (false when a record went missing or lagged its checkpoint).
WALL_CLOCK_KEYS = ("train_seconds", "through_epoch", "complete", "sittings", "train_seconds_this_session",
                   "critic_images_per_s", "images_per_s_by_step")
# Every generator family's ``regularisers(out, active)`` (TrainState.G is typed as a plain nn.Module).
Regularisers = Callable[[GeneratorOutput, set[str]], dict[str, torch.Tensor]]


def lr_factor(epoch: int, epochs: int, decay_epochs: int) -> float:
    """Constant, then linear decay over the last ``decay_epochs`` (paper: last 10 of 30).

    Epoch ``epochs - decay_epochs`` still runs at the full rate; the last one at 1/decay_epochs.
    """
    start = epochs - decay_epochs
    return 1.0 if epoch < start or decay_epochs == 0 else (epochs - epoch) / decay_epochs


def build_state(run: RunConfig, device: torch.device) -> TrainState:
    torch.manual_seed(run.seed)  # network initialisation
    G = build_generator(run.model, run.image_size).to(device)
    D = build_critic(run.model, run.image_size).to(device)
    t = run.train

    def adam(module: nn.Module, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(module.parameters(), lr=lr, betas=(t.beta1, t.beta2))

    def schedule(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(e, t.epochs, t.decay_epochs))

    opt_G, opt_D = adam(G, t.lr), adam(D, t.lr_critic)
    rng = torch.Generator(device=device)
    rng.manual_seed(run.seed)
    G_ema = copy.deepcopy(G).requires_grad_(False) if t.ema else None
    return TrainState(G, D, opt_G, opt_D, schedule(opt_G), schedule(opt_D), rng, G_ema=G_ema)


@torch.no_grad()
def update_ema(state: TrainState, ema: float) -> None:
    """After generator step ``state.step``: G_ema <- d * G_ema + (1 - d) * G, with the decay
    d = min(ema, (1 + n) / (10 + n)) (TensorFlow's ExponentialMovingAverage with num_updates), so
    the first steps' weights, and the initialisation, fade fast. Reads G, never changes it."""
    assert state.G_ema is not None  # built by build_state when train.ema is on
    decay = min(ema, (1 + state.step) / (10 + state.step))
    for p_avg, p_now in zip(state.G_ema.parameters(), state.G.parameters()):
        p_avg.lerp_(p_now.detach(), 1 - decay)
    for b_avg, b_now in zip(state.G_ema.buffers(), state.G.buffers()):
        b_avg.copy_(b_now)


# ---------------------------------------------------------------------- losses
def weighted_total(terms: dict[str, torch.Tensor], lam: LambdaConfig, batch_size: int) -> torch.Tensor:
    """The one place the lambdas are applied. ``cond`` is divided by the batch size, as
    GANimation's official code does (see baselines/PORTING.md)."""
    weight = {"adv": lam.adv, "gp": lam.gp, "cond": lam.cond / batch_size, "cyc": lam.cyc,
              "tv": lam.tv, "att": lam.att, "att_tv": lam.att_tv, "flow": lam.flow, "idt": lam.idt}
    return cast(torch.Tensor, sum(weight[name.split("_", 1)[1]] * value for name, value in terms.items()))  # terms: never empty


def draw_alpha(state: TrainState, n: int, device: torch.device, lam: LambdaConfig) -> torch.Tensor | None:
    """The gradient penalty's interpolation weights for a batch of ``n`` (None when ``gp`` is off)."""
    return torch.rand(n, 1, 1, 1, device=device, generator=state.rng) if lam.gp else None


def critic_terms(state: TrainState, x: torch.Tensor, y_s: torch.Tensor, y_t: torch.Tensor,
                 lam: LambdaConfig, alpha: torch.Tensor | None = None, fast: Fast = Fast()) -> dict[str, torch.Tensor]:
    """Unweighted critic terms of Eqs. (6) and (7) on one batch; ``alpha``: the gradient
    penalty's weights (:func:`draw_alpha`; drawn here when not given); ``fast``: under bf16 the
    penalty may run in fp32 (:func:`dftnet.nets.accel.penalty_precision`)."""
    with torch.no_grad():
        fake = state.G(x, y_t).image
    d_real, c_real = state.D(x)
    d_fake, _ = state.D(fake)
    terms = {"d_adv": losses.critic_wgan_loss(d_real, d_fake)}
    if lam.gp:
        alpha = alpha if alpha is not None else draw_alpha(state, x.shape[0], x.device, lam)
        assert alpha is not None  # drawn when gp is on
        with accel.penalty_precision(fast, x.device):
            terms["d_gp"] = losses.gradient_penalty(lambda z: state.D(z)[0], x, fake, alpha)
    if lam.cond:
        terms["d_cond"] = losses.au_condition_loss(c_real, y_s)
    return terms


def generator_terms(state: TrainState, x: torch.Tensor, y_s: torch.Tensor, y_t: torch.Tensor,
                    lam: LambdaConfig) -> dict[str, torch.Tensor]:
    """Unweighted generator terms of Eqs. (6)-(10) on one batch.

    The regularisers (flow smoothness, attention) apply to the edit; to the cycle pass too
    only where the generator family says so (``regularise_cycle_pass``: GANimation's official
    code does, DFT-Net's paper does not).
    """
    active = {name for name in ("tv", "att", "att_tv", "flow") if getattr(lam, name)}
    out = state.G(x, y_t)
    d_fake, c_fake = state.D(out.image)
    terms = {"g_adv": losses.generator_wgan_loss(d_fake)}
    if lam.cond:
        terms["g_cond"] = losses.au_condition_loss(c_fake, y_t)
    regs = cast(Regularisers, state.G.regularisers)(out, active)
    if lam.cyc:
        rec = state.G(out.image, y_s)
        terms["g_cyc"] = losses.cycle_loss(x, rec.image)
        if state.G.regularise_cycle_pass:
            rec_regs = cast(Regularisers, state.G.regularisers)(rec, active)
            regs = {k: v + rec_regs[k] for k, v in regs.items()}
    terms.update({f"g_{k}": v for k, v in regs.items()})
    if lam.idt:
        terms["g_idt"] = losses.identity_loss(x, state.G(x, y_s).image)
    return terms


# ----------------------------------------------------------------------- batches
def draw_batch(images: torch.Tensor, aus: torch.Tensor, idx: torch.Tensor, state: TrainState,
               flip: bool, au_noise: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source images, their AUs and target AUs (another training image's, plus uniform noise,
    as GANimation) for one batch; everything drawn on the device from the loop's generator."""
    x = to_model(images[idx])
    if flip:
        mask = torch.rand(idx.shape[0], 1, 1, 1, device=x.device, generator=state.rng) < 0.5
        x = torch.where(mask, x.flip(-1), x)
    y_s = aus[idx]
    other = torch.randint(0, aus.shape[0], idx.shape, device=x.device, generator=state.rng)
    noise = (torch.rand(y_s.shape, device=x.device, generator=state.rng) * 2 - 1) * au_noise
    y_t = (aus[other] + noise).clamp(0, 1)
    return x, y_s, y_t


def warm_up_critic(state: TrainState, images: torch.Tensor, aus: torch.Tensor, t: TrainConfig, world: World,
                   fast: Fast = Fast()) -> float | None:
    """``t.critic_warmup`` critic steps on D_C's term of Eq. (7) alone (real faces, their own
    AUs), with the critic's optimiser and batches from the loop's generator, before generator
    step 0; G is not touched. Returns the last step's D_C loss (None when there is none)."""
    last = None
    for _ in range(t.critic_warmup):
        idx = torch.randint(0, images.shape[0], (t.batch_size,), device=images.device, generator=state.rng)
        x, y_s, _ = draw_batch(images, aus, idx, state, t.flip, t.au_noise)
        x, y_s = cast(torch.Tensor, world.shard(x)), cast(torch.Tensor, world.shard(y_s))
        with accel.autocast(fast, x.device):
            loss = losses.au_condition_loss(state.D(accel.images(fast, x))[1], y_s)
        state.opt_D.zero_grad(set_to_none=True)
        weighted_total({"d_cond": loss}, t.lambdas, t.batch_size).backward()
        distributed.average_gradients(state.D, world)
        state.opt_D.step()
        last = loss.detach()
    return None if last is None else float(distributed.mean_over_ranks(last.float().reshape(1), world)[0])


# ----------------------------------------------------------------------- logging
class Log:
    """Per-step losses stacked on the device; the host reads them once per log row."""

    def __init__(self, path: Path, keep_until_step: int, world: World = World(),
                 columns: tuple[str, ...] = LOG_COLUMNS):
        self.path, self.world, self.columns = path, world, columns
        if world.main:  # one writer; the other ranks only average their values into its rows
            csvlog.restart(path, columns, keep_until_step)  # resume: drop rows past the checkpoint
        self.pending: dict[str, list[torch.Tensor]] = {}
        self.steps: dict[str, list[int]] = {}  # the generator step each pending value belongs to
        self.t0, self.images = time.perf_counter(), 0
        self.throughput: dict[int, float] = {}  # generator step -> images/s of the row ending there

    def add(self, terms: dict[str, torch.Tensor], step: int, images: int = 0) -> None:
        for k, v in terms.items():
            self.pending.setdefault(k, []).append(v.detach().float())
            self.steps.setdefault(k, []).append(step)
        self.images += images

    def flush(self, step: int, epoch: int, lr: float | torch.Tensor) -> dict:
        """Write one row (means since the last row); raise if any term went non-finite."""
        values = {k: distributed.mean_over_ranks(torch.stack(v), self.world).cpu() for k, v in self.pending.items()}
        first = []  # (generator step, term, value) of each term's first non-finite value
        for name, vals in values.items():
            bad = (~torch.isfinite(vals)).nonzero()
            if len(bad):
                i = int(bad[0, 0])
                first.append((self.steps[name][i], name, vals[i].item()))
        if first:
            at, name, value = min(first)
            raise TrainingDiverged(f"training diverged: loss {name} is {value} at generator step {at} (epoch {epoch})")
        elapsed = time.perf_counter() - self.t0
        row = {"step": step, "epoch": epoch, "lr": lr}
        row.update({k: float(v.mean()) for k, v in values.items()})
        if self.world.main:
            csvlog.append(self.path, self.columns, row)
        row["images_per_s"] = self.throughput[step] = round(self.images / max(elapsed, 1e-9), 2)  # not logged
        self.pending, self.steps, self.t0, self.images = {}, {}, time.perf_counter(), 0
        return row


def progress_line(row: dict, epochs: int) -> str:
    losses_txt = " ".join(f"{k}={row[k]:.4g}" for k in D_TERMS + G_TERMS + OPTIONAL_G_TERMS if k in row)
    return f"epoch {row['epoch']}/{epochs} step {row['step']} lr {row['lr']:.2e} {row['images_per_s']:.0f} img/s {losses_txt}"


# -------------------------------------------------------------------------- loop
def train(run: RunConfig, ds: FaceDataset, out_dir: str | Path, device: str | None = None,
          epochs_this_session: int | None = None, judge: nn.Module | None = None, compute: ComputeConfig | None = None,
          wall_clock: str | Path | None = None, deadline: float | None = None) -> dict:
    """Train one variant and seed into ``out_dir``, resuming from its checkpoint if present.

    ``judge``: the independent AU judge; with ``train.curve_every`` > 0 it reads edits of
    held-out pairs every that many generator steps into ``out_dir/curve.csv`` (the learning
    curve; it is only read, never gives gradients or picks checkpoints).
    ``epochs_this_session``: train at most this many more epochs, then return ``{}`` with the run
    resumable (a machine lent for a limited time; the same call again goes on).
    ``compute``: the fast-path params (precision, channels_last, compile; :mod:`dftnet.nets.accel`),
    resolved for the device; the defaults (``auto``) when not given.
    Returns the run summary written to ``out_dir/train_summary.json`` together with the
    run's wall-clock record over its sittings (:data:`WALL_CLOCK_KEYS`), which is written only to
    ``wall_clock`` when given (:func:`wall_clock_path`), at every checkpoint, never into ``out_dir``.
    ``deadline`` (seconds since the epoch, as ``time.time()``): stop, resumable, after the first
    epoch that ends past it. A sitting cut short by either checkpoints where it stops, at the
    first epoch end with no partial log row pending, so that the resumed run's log, like its
    weights, is the unbroken run's.

    The folder is locked while training (a second writer stops with one line), and a run that
    fails before its first checkpoint leaves no folder behind. Launched by ``torchrun`` over N
    processes, the run is data parallel (:mod:`dftnet.training.distributed`); rank 0 holds the lock and
    writes everything.
    """
    out_dir, world = Path(out_dir), distributed.from_env()
    compute = compute or ComputeConfig()
    if not world.main:
        return _train(run, ds, out_dir, device, epochs_this_session, judge, world, compute, wall_clock, deadline)
    with atomic.exclusive(out_dir, "training"):
        fresh = not (out_dir / CHECKPOINT).exists()
        try:
            return _train(run, ds, out_dir, device, epochs_this_session, judge, world, compute, wall_clock, deadline)
        except BaseException:
            if fresh and not (out_dir / CHECKPOINT).exists():
                shutil.rmtree(out_dir, ignore_errors=True)
            raise


def _train(run: RunConfig, ds: FaceDataset, out_dir: Path, device: str | None, epochs_this_session: int | None,
           judge: nn.Module | None, world: World, compute: ComputeConfig, wall_clock: str | Path | None = None,
           deadline: float | None = None) -> dict:
    """The loop of :func:`train`, inside its lock."""
    out_dir, dev, t = Path(out_dir), distributed.device_of(world, pick_device(device)), run.train
    fast = accel.resolve(compute, dev)
    distributed.init(world, dev)
    if deadline is not None and world.size > 1:  # the ranks' clocks could stop them at different epochs
        raise DataError("a time limit (--hours) needs one process per run; use --epochs-this-session")
    if t.batch_size % world.size:
        raise DataError(f"train.batch_size: {t.batch_size} does not split over {world.size} processes")
    out_dir.mkdir(parents=True, exist_ok=True)
    if ds.image_size != run.image_size:
        raise DataError(f"{ds.meta.get('root', 'dataset')}: images are {ds.image_size} px, params say data.image_size={run.image_size}")
    state = build_state(run, dev)
    accel.prepare_networks(fast, state.G, state.D)
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists():  # 1. resume where the last checkpoint left off
        ckpt = read_checkpoint(ckpt_path)
        if ckpt["config"] != run.to_dict():
            raise DataError(f"{ckpt_path}: checkpoint was written with other params; delete the run folder to start over")
        started = ckpt.get("precision", "fp32")
        if started != fast.precision:
            raise DataError(f"{ckpt_path}: the run started in {started}, compute.precision resolves to {fast.precision} "
                            f"on {dev}; resume with precision {started} or delete the run folder")
        restore(state, ckpt, ckpt_path)
    if world.main:
        (out_dir / "config.json").write_text(json.dumps(run.to_dict(), indent=2))
    images = ds.images[ds.train_idx].to(dev)  # 2. the training split lives on the device
    aus = aus_to_model(ds.aus[ds.train_idx]).to(dev)
    n_iter = images.shape[0] // t.batch_size
    if n_iter == 0:
        raise DataError(f"training split has {images.shape[0]} images, fewer than train.batch_size={t.batch_size}")
    log = Log(out_dir / LOG, state.step, world, log_columns(t.lambdas))
    curve = (LearningCurve(out_dir / CURVE, state.step, judge, ds, t.curve_pairs, dev)
             if t.curve_every and judge and world.main else None)
    if t.critic_warmup and state.step == 0 and state.epoch == 0:  # a resumed run has done it
        warm = warm_up_critic(state, images, aus, t, world, fast)
        if world.main:
            print(f"critic warm-up: {t.critic_warmup} D_C steps, last d_cond {warm:.4f}", file=sys.stderr)
    if curve and state.step == 0:
        curve.point(state)
    autocast = accel.autocast(fast, dev)
    start, t_start = state.epoch, time.perf_counter()
    saved = {"epoch": state.epoch if ckpt_path.exists() else None}
    earlier = earlier_sittings(wall_clock, start) if world.main else {}
    clock = clock_record(earlier, start, start, 0.0, images.shape[0], {})

    def flush(epoch: int) -> dict:
        """One log row; a non-finite loss stops the run here, naming the folder, step and term."""
        try:
            return log.flush(state.step, epoch, state.sched_G.get_last_lr()[0])
        except TrainingDiverged as err:
            kept = (f"the last good checkpoint (epoch {saved['epoch']}) is kept" if saved["epoch"] is not None
                    else "no checkpoint was written")
            raise TrainingDiverged(f"{out_dir}: {err}; {kept}") from None

    for epoch in range(state.epoch, t.epochs):
        perm = torch.randperm(images.shape[0], device=dev, generator=state.rng)
        for it in range(n_iter):
            idx = perm[it * t.batch_size:(it + 1) * t.batch_size]
            x, y_s, y_t = draw_batch(images, aus, idx, state, t.flip, t.au_noise)  # the global batch,
            alpha = draw_alpha(state, idx.shape[0], dev, t.lambdas)  # then this rank's shard of it
            x, y_s, y_t, alpha = cast(Iterator[Any], map(world.shard, (x, y_s, y_t, alpha)))  # a tensor stays a tensor
            x = accel.images(fast, x)
            with autocast:  # 3. critic step, every iteration
                d_terms = critic_terms(state, x, y_s, y_t, t.lambdas, alpha, fast)
            state.opt_D.zero_grad(set_to_none=True)
            weighted_total(d_terms, t.lambdas, t.batch_size).backward()
            distributed.average_gradients(state.D, world)
            state.opt_D.step()
            log.add(d_terms, state.step + 1, images=idx.shape[0])
            if (epoch * n_iter + it + 1) % t.n_critic:  # global count: epochs may be short
                continue
            with autocast:  # 4. generator step, every n_critic-th iteration
                g_terms = generator_terms(state, x, y_s, y_t, t.lambdas)
            state.opt_G.zero_grad(set_to_none=True)
            weighted_total(g_terms, t.lambdas, t.batch_size).backward()
            distributed.average_gradients(state.G, world)
            state.opt_G.step()
            state.step += 1
            if t.ema:
                update_ema(state, t.ema)
            log.add(g_terms, state.step)
            if state.step % t.log_every == 0:  # 5. one host read per log row
                row = flush(epoch)
                if world.main:
                    print(progress_line(row, t.epochs), file=sys.stderr)
            if curve and state.step % t.curve_every == 0:  # 6. the judge reads held-out edits
                curve.point(state)
        state.epoch = epoch + 1
        regular = state.epoch % t.checkpoint_every == 0 or state.epoch == t.epochs
        limit = ((epochs_this_session is not None and state.epoch - start >= epochs_this_session)
                 or (deadline is not None and time.time() >= deadline))
        # a sitting stops where an unbroken run would have written the same log: at a regular
        # checkpoint, or where no partial log row is pending (its mean would be split in two)
        stop_now = limit and state.epoch < t.epochs and (regular or not log.pending)
        checkpoint_now = regular or stop_now
        if checkpoint_now and log.pending:  # a non-finite term stops here, before the save
            flush(epoch)
        state.sched_G.step()
        state.sched_D.step()
        if checkpoint_now:  # 7. full state, atomically, by rank 0 (every rank's state is the same)
            if world.main:
                save_checkpoint(state, run, ckpt_path, fast)
                clock = clock_record(earlier, start, state.epoch, time.perf_counter() - t_start, images.shape[0],
                                     log.throughput)
                if wall_clock is not None:  # only a sitting that trains writes: a finished run keeps its record
                    atomic.write_text(wall_clock, json.dumps(clock, indent=2))
            distributed.barrier(world)
            saved["epoch"] = state.epoch
        if stop_now:
            return {}
    if not world.main:
        return {}
    summary = write_summary(run, state, out_dir, dev, fast, world.size)
    return {**summary, **clock}


def earlier_sittings(wall_clock: str | Path | None, start: int) -> dict:
    """What a resumed run's wall-clock record says of the sittings before this one: the record
    when it covers exactly the ``start`` epochs of the checkpoint, else its sittings marked
    incomplete (missing, unreadable, an older format, or lagging a checkpoint written after it)."""
    if start == 0:
        return {"sittings": [], "complete": True, "images_per_s_by_step": {}}
    try:
        prior = json.loads(Path(wall_clock).read_text()) if wall_clock is not None else {}
    except (OSError, ValueError):
        prior = {}
    prior = prior if isinstance(prior, dict) else {}
    listed: list = prior["sittings"] if isinstance(prior.get("sittings"), list) else []
    well_formed = [s for s in listed if isinstance(s, dict) and isinstance(s.get("seconds"), (int, float))
                   and isinstance(s.get("epochs"), list) and len(s["epochs"]) == 2
                   and all(isinstance(e, int) for e in s["epochs"])]
    sittings = [s for s in well_formed if s["epochs"][1] <= start]  # a record ahead of its checkpoint: those
    complete = (prior.get("through_epoch") == start and prior.get("complete") is True  # epochs are trained again
                and len(sittings) == len(listed))
    by_step = prior.get("images_per_s_by_step")
    by_step = dict(by_step) if isinstance(by_step, dict) else {}  # steps trained again overwrite theirs
    return {"sittings": sittings, "complete": complete, "images_per_s_by_step": by_step}


def clock_record(earlier: dict, start: int, epoch: int, seconds: float, images_per_epoch: int,
                 throughput: dict[int, float]) -> dict:
    """The wall-clock record after this sitting trained epochs ``start`` to ``epoch`` in
    ``seconds``, following the ``earlier`` sittings (:func:`earlier_sittings`)."""
    sittings = list(earlier.get("sittings", []))
    if epoch > start:
        sittings.append({"epochs": [start, epoch], "seconds": round(seconds, 2)})
    total = sum(float(s.get("seconds", 0.0)) for s in sittings)
    timed_epochs = sum(s["epochs"][1] - s["epochs"][0] for s in sittings)
    return {"train_seconds": round(total, 2), "through_epoch": epoch, "complete": bool(earlier.get("complete", True)),
            "sittings": sittings, "train_seconds_this_session": round(seconds, 2),
            "critic_images_per_s": round(images_per_epoch * timed_epochs / total, 2) if total > 0 else None,
            "images_per_s_by_step": {**earlier.get("images_per_s_by_step", {}),
                                     **{str(k): v for k, v in throughput.items()}}}


def write_summary(run: RunConfig, state: TrainState, out_dir: Path, dev: torch.device, fast: Fast = Fast(),
                  processes: int = 1) -> dict:
    """``train_summary.json``: what the run is and ran on; nothing measured by the clock, so two
    identical runs write the same bytes."""
    summary = {
        "variant": run.variant, "seed": run.seed, "epochs": state.epoch, "generator_steps": state.step,
        "generator_parameters": sum(p.numel() for p in state.G.parameters()),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "processes": processes,
        "fast_path": fast.to_dict(),
    }
    atomic.write_text(out_dir / "train_summary.json", json.dumps(summary, indent=2))
    return summary


def wall_clock_path(runs_root: str | Path, variant: str, seed: int) -> Path:
    """Where a run's wall-clock record goes: ``<runs_root>.wall_clock/<variant>/seed<k>.json``,
    beside the runs folder and outside every run folder, so the runs' hashes do not depend on
    the machine's speed (docs/reproducibility.md lists the files that do)."""
    root = Path(runs_root)
    root = root if root.name else root.resolve()
    return root.with_name(root.name + ".wall_clock") / variant / f"seed{seed}.json"
