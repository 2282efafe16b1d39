"""The pipeline's steps as library functions: params and paths in, declared outputs out.

Each DVC stage (``dvc.yaml``) and each ``dftnet`` subcommand is one call into this module,
so the pipeline runs, and can be tested, without DVC.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from dftnet.config import Params, load_params, resolve_variant
from dftnet.errors import DataError


def load(params_path: str | Path = "params.yaml") -> Params:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    return load_params(params_path)


def write_json(path: str | Path, payload: dict) -> None:
    """Atomic JSON write (tmp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def dataset(params: Params):
    from dftnet.data.io import load_dataset

    ds = load_dataset(params.data.root)
    if ds.image_size != params.data.image_size:
        raise DataError(f"{params.data.root}: images are {ds.image_size} px but data.image_size is "
                        f"{params.data.image_size}; run the prepare stage again")
    return ds


def prepare(params: Params) -> None:
    """Render the embedded synthetic dataset, or ingest the user's folder, into ``data.root``."""
    from dftnet.data.io import ingest_folder, save_dataset

    if params.data.source == "synthetic":
        from dftnet.data.synth import build_synthetic_dataset

        ds = build_synthetic_dataset(params.data.synthetic, params.data.image_size)
    else:
        ds = ingest_folder(params.data.folder, params.data.image_size)
    save_dataset(ds, params.data.root)


def train_variant(params: Params, variant: str, runs_root: str | Path = "runs", device: str | None = None) -> None:
    """Train ``variant`` once per seed into ``<runs_root>/<variant>/seed<k>/``."""
    from dftnet.train import train

    ds = dataset(params)
    for seed in params.seeds:
        run = resolve_variant(params, variant, seed)
        train(run, ds, Path(runs_root) / variant / f"seed{seed}", device)
