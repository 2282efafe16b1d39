"""The checkpoint: the training state it holds (:class:`TrainState`), writing and restoring it,
and reading a trained run's networks back, safely. Every key of the file is written and read here.

Evaluation, timing, figures and the learning study read checkpoints through this module
without importing the trainer.
Checkpoints are plain state dicts and config (no pickled classes), loaded with
``weights_only=True``: a foreign or malicious file is refused, never executed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dftnet.nets.accel import Fast
from dftnet.config import RunConfig, run_config_from_dict
from dftnet.runtime import atomic, safeload
from dftnet.runtime.errors import ConfigError, DataError, first_line
from dftnet.nets.generators import build_critic, build_generator

CHECKPOINT = "checkpoint.pt"


CONTENTS = ("config", "epoch", "step", "G", "D", "opt_G", "opt_D", "sched_G", "sched_D", "rng_loop", "rng_torch")


@dataclass
class TrainState:
    """Everything that defines where a run is; saved whole in each checkpoint."""

    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    sched_G: torch.optim.lr_scheduler.LambdaLR
    sched_D: torch.optim.lr_scheduler.LambdaLR
    rng: torch.Generator
    epoch: int = 0  # epochs completed
    step: int = 0  # generator steps completed
    G_ema: nn.Module | None = None  # the generator's moving average (train.ema), when on


def evaluated_generator(state: TrainState) -> nn.Module:
    """The generator a run is scored by: the moving average when ``train.ema`` keeps one."""
    return state.G_ema if state.G_ema is not None else state.G


def save_checkpoint(state: TrainState, run: RunConfig, path: Path, fast: Fast = Fast()) -> None:
    """Full state as plain tensors and dicts (no pickled classes), written atomically; ``fast``:
    the precision is kept, since a run resumes only in the precision it started with."""
    payload = {
        "format": 1,
        "config": run.to_dict(),
        "precision": fast.precision,
        "epoch": state.epoch,
        "step": state.step,
        "G": state.G.state_dict(),
        "D": state.D.state_dict(),
        "opt_G": state.opt_G.state_dict(),
        "opt_D": state.opt_D.state_dict(),
        "sched_G": state.sched_G.state_dict(),
        "sched_D": state.sched_D.state_dict(),
        "rng_loop": state.rng.get_state(),
        "rng_torch": torch.get_rng_state(),
    }
    if state.G_ema is not None:
        payload["G_ema"] = state.G_ema.state_dict()
    atomic.write_with(path, lambda tmp: torch.save(payload, tmp))


def restore(state: TrainState, ckpt: dict, path: Path) -> None:
    """Resume from ``ckpt`` (read from ``path``); a weight that does not fit or is not finite,
    or optimiser state that does not load, stops with one line naming the file."""
    safeload.load_weights(state.G, ckpt["G"], path, "generator")
    safeload.load_weights(state.D, ckpt["D"], path, "critic")
    if state.G_ema is not None:
        safeload.load_weights(state.G_ema, averaged_weights(ckpt, path), path, "averaged generator")
    try:
        state.opt_G.load_state_dict(ckpt["opt_G"])
        state.opt_D.load_state_dict(ckpt["opt_D"])
        state.sched_G.load_state_dict(ckpt["sched_G"])
        state.sched_D.load_state_dict(ckpt["sched_D"])
        state.rng.set_state(ckpt["rng_loop"])
        torch.set_rng_state(ckpt["rng_torch"])
        state.epoch, state.step = int(ckpt["epoch"]), int(ckpt["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(f"{path}: the checkpoint's training state does not load ({type(err).__name__}: {first_line(err)})") from None


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint without executing code (:mod:`dftnet.runtime.safeload`); one-line errors."""
    state = safeload.load_file(path, "checkpoint")
    safeload.require(state, CONTENTS, path, "training checkpoint")
    return state


def averaged_weights(ckpt: dict, path: Path) -> dict:
    """The generator's moving average (``train.ema``) held by ``ckpt``; one line naming the file if absent."""
    if "G_ema" not in ckpt:
        raise DataError(f"{path}: train.ema is on but the checkpoint holds no averaged generator (G_ema)")
    return ckpt["G_ema"]


def run_config_of(ckpt: dict, path: Path) -> RunConfig:
    try:
        return run_config_from_dict(ckpt["config"])
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise DataError(f"{path}: the checkpoint's config is not valid ({err})") from None


def load_trained(run_dir: str | Path, device: str | torch.device = "cpu",
                 averaged: bool = True) -> tuple[nn.Module, nn.Module, RunConfig]:
    """The trained generator and critic of a run folder, in eval mode, with their config.

    The generator is the moving average of its weights when the run kept one (``train.ema``),
    the weights as last trained otherwise or with ``averaged=False``."""
    path = Path(run_dir) / CHECKPOINT
    ckpt = read_checkpoint(path)
    run = run_config_of(ckpt, path)
    G = build_generator(run.model, run.image_size)
    D = build_critic(run.model, run.image_size)
    safeload.load_weights(G, averaged_weights(ckpt, path) if averaged and run.train.ema else ckpt["G"], path, "generator")
    safeload.load_weights(D, ckpt["D"], path, "critic")
    return G.to(device).eval(), D.to(device).eval(), run


def require_finished(run_dir: str | Path) -> None:
    """One DataError unless ``run_dir`` holds the checkpoint of a run that trained every epoch."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise DataError(f"{run_dir}: no {CHECKPOINT}; is this a run folder (runs/<variant>/seed<k>)?")
    ckpt = read_checkpoint(path)
    run = run_config_of(ckpt, path)
    if int(ckpt["epoch"]) < run.train.epochs:
        raise DataError(f"{path}: training not finished (epoch {int(ckpt['epoch'])} of {run.train.epochs}); "
                        "resume it with dftnet train first")

