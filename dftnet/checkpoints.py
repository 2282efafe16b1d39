"""Reading a trained run: the checkpoint file, safely, and the networks it holds.

Evaluation, timing, figures and the learning study read checkpoints through this module
without importing the trainer (which writes them: :func:`dftnet.train.save_checkpoint`).
Checkpoints are plain state dicts and config (no pickled classes), loaded with
``weights_only=True``: a foreign or malicious file is refused, never executed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dftnet.config import RunConfig, run_config_from_dict
from dftnet import safeload
from dftnet.errors import ConfigError, DataError
from dftnet.generators import build_critic, build_generator

CHECKPOINT = "checkpoint.pt"


CONTENTS = ("config", "epoch", "step", "G", "D", "opt_G", "opt_D", "sched_G", "sched_D", "rng_loop", "rng_torch")


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint without executing code (:mod:`dftnet.safeload`); one-line errors."""
    state = safeload.load_file(path, "checkpoint")
    safeload.require(state, CONTENTS, path, "training checkpoint")
    return state


def run_config_of(ckpt: dict, path: Path) -> RunConfig:
    try:
        return run_config_from_dict(ckpt["config"])
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise DataError(f"{path}: the checkpoint's config is not valid ({err})") from None


def load_trained(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, nn.Module, RunConfig]:
    """The trained generator and critic of a run folder, in eval mode, with their config."""
    path = Path(run_dir) / CHECKPOINT
    ckpt = read_checkpoint(path)
    run = run_config_of(ckpt, path)
    G = build_generator(run.model, run.image_size)
    D = build_critic(run.model, run.image_size)
    safeload.load_weights(G, ckpt["G"], path, "generator")
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

