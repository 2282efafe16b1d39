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
from dftnet.errors import DataError
from dftnet.generators import build_critic, build_generator

CHECKPOINT = "checkpoint.pt"


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint without executing code (``weights_only=True``); one-line errors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: checkpoint not found") from None
    except Exception as err:  # unpickling refusal, truncation, not a zip archive ...
        raise DataError(f"{path}: not a loadable checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:160]})") from None


def load_trained(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, nn.Module, RunConfig]:
    """The trained generator and critic of a run folder, in eval mode, with their config."""
    ckpt = read_checkpoint(Path(run_dir) / CHECKPOINT)
    run = run_config_from_dict(ckpt["config"])
    G = build_generator(run.model, run.image_size)
    D = build_critic(run.model, run.image_size)
    G.load_state_dict(ckpt["G"])
    D.load_state_dict(ckpt["D"])
    return G.to(device).eval(), D.to(device).eval(), run
