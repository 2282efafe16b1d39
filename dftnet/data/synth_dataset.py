"""The embedded default dataset, assembled from the renderer (:mod:`dftnet.data.synth`):
four disjoint sets of people (the GANs' train, validation, test, and the AU judge's own), their
expressions, and paired validation and test edits with the true result rendered beside each
(the ground truth the paired metrics need).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from dftnet.config import SyntheticConfig
from dftnet.data.aus import N_AUS
from dftnet.data.dataset import EvalPairs, FaceDataset
from dftnet.data.synth import RENDERER_VERSION, Identity, render_uint8, sample_expressions, sample_identities, stream


def _split(cfg: SyntheticConfig, split: str, n_identities: int, size: int, g: torch.Generator):
    """One split: ids, person labels, AUs (rounded to 2 decimals before rendering), images."""
    ident = sample_identities(n_identities, cfg.seed, split)
    k = cfg.images_per_identity
    aus = torch.round(sample_expressions(n_identities * k, g) * 100) / 100
    person = torch.arange(n_identities).repeat_interleave(k)
    images = render_uint8(ident.take(person), aus, size)
    ids = [f"{split}_p{p:04d}_e{e:02d}" for p in range(n_identities) for e in range(k)]
    people = [f"{split}_p{p:04d}" for p in range(n_identities) for _ in range(k)]
    return ident, ids, people, aus, images


def _pairs(cfg: SyntheticConfig, test_ident: Identity, test_aus: torch.Tensor, test_ids: list[str], size: int,
           tag: int = 3) -> EvalPairs:
    """Evaluation edits: an image, the AUs of another person's image of the same split, and the
    true result (random stream ``tag``: 3 for test pairs, 7 for validation pairs).

    With a single identity there is no other person; the target AUs are then drawn fresh
    (target id "").
    """
    g = stream(cfg.seed, tag)
    n_people, k, m = len(test_ident), cfg.images_per_identity, cfg.pairs_per_test_identity
    person = torch.arange(n_people).repeat_interleave(m)
    source = person * k + torch.randint(k, (len(person),), generator=g)
    if n_people > 1:
        # A uniform other person: shift by 1..n-1 so the target person is never the source's.
        other = (person + 1 + torch.randint(n_people - 1, (len(person),), generator=g)) % n_people
        target = other * k + torch.randint(k, (len(person),), generator=g)
        target_aus, target_ids = test_aus[target], [test_ids[t] for t in target]
    else:
        target_aus = torch.round(sample_expressions(len(person), g) * 100) / 100
        target_ids = [""] * len(person)
    return EvalPairs(
        pair_ids=[f"pair_{i:05d}" for i in range(len(person))],
        source_ids=[test_ids[s] for s in source],
        target_ids=target_ids,
        target_aus=target_aus,
        gt=render_uint8(test_ident.take(person), target_aus, size),
    )


def build_synthetic_dataset(cfg: SyntheticConfig, image_size: int) -> FaceDataset:
    """The embedded default dataset: disjoint train, validation, test and judge people, and
    paired validation and test edits.

    Deterministic from ``cfg.seed``; train and test are drawn exactly as before the validation
    and judge splits existed (their own streams), so adding those changed no train or test image.
    AUs are rounded to 2 decimals before rendering, so the stored values are exactly those
    rendered and survive a CSV round trip.
    """
    g = stream(cfg.seed, 2)
    _, tr_ids, tr_people, tr_aus, tr_img = _split(cfg, "train", cfg.n_train_identities, image_size, g)
    te_ident, te_ids, te_people, te_aus, te_img = _split(cfg, "test", cfg.n_test_identities, image_size, g)
    g_extra = stream(cfg.seed, 6)
    va_ident, va_ids, va_people, va_aus, va_img = _split(cfg, "val", cfg.n_val_identities, image_size, g_extra)
    _, ju_ids, ju_people, ju_aus, ju_img = _split(cfg, "judge", cfg.n_judge_identities, image_size, g_extra)
    return FaceDataset(
        ids=tr_ids + te_ids + va_ids + ju_ids,
        images=torch.cat([tr_img, te_img, va_img, ju_img]),
        aus=torch.cat([tr_aus, te_aus, va_aus, ju_aus]),
        train_ids=tr_ids,
        test_ids=te_ids,
        val_ids=va_ids,
        judge_ids=ju_ids,
        val_pairs=_pairs(cfg, va_ident, va_aus, va_ids, image_size, tag=7),
        identities=tr_people + te_people + va_people + ju_people,
        pairs=_pairs(cfg, te_ident, te_aus, te_ids, image_size),
        meta={"source": "synthetic", "seed": cfg.seed, "image_size": int(image_size),
              "renderer_version": RENDERER_VERSION, "synthetic": dataclasses.asdict(cfg)},
    )


def ground_truth_renderer(ds: FaceDataset) -> Callable[[int, torch.Tensor], torch.Tensor] | None:
    """For a synthetic dataset: (row index, target AUs 0-5) -> the true uint8 3 x H x W edit.

    Rebuilds each person from the seed recorded in ``ds.meta``; None for real data.
    """
    if ds.meta.get("source") != "synthetic" or ds.identities is None:
        return None
    cfg = ds.meta["synthetic"]
    people = {split: sample_identities(cfg[f"n_{split}_identities"], cfg["seed"], split)
              for split in ("train", "test", "val", "judge") if f"n_{split}_identities" in cfg}

    def render_row(row: int, target_aus: torch.Tensor) -> torch.Tensor:
        assert ds.identities is not None  # checked above: a synthetic dataset labels every image
        split, person = ds.identities[row].rsplit("_p", 1)
        who = people[split].take(torch.tensor([int(person)]))
        return render_uint8(who, target_aus.float().view(1, N_AUS), ds.image_size)[0]

    return render_row


def neutral_faces(ds: FaceDataset, source_ids: list[str]) -> torch.Tensor | None:
    """Each source's person rendered with every AU at 0 (uint8 P x 3 x H x W): the output of a
    generator that erases the expression instead of editing it. None for real data."""
    render = ground_truth_renderer(ds)
    if render is None:
        return None
    zero = torch.zeros(N_AUS)
    rows = ds.index(source_ids).tolist()
    return torch.stack([render(r, zero) for r in rows]) if rows else None
