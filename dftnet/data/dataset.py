"""The in-memory dataset every stage shares, synthetic or real.

Images stay uint8 N x 3 x H x W in one tensor (a few hundred MB at most at 128 px), so a
trainer can move the whole split to the accelerator once and index it without host syncs.
On disk the same object is the canonical folder format written and read by
``dftnet.data.canonical`` (``save_dataset`` / ``load_dataset``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class EvalPairs:
    """Edits to evaluate: a source image, target AUs and, where known, the true target image.

    target_ids: the dataset image whose AUs are the target, or "" where the target AUs were
    drawn without an image (synthetic pairs render their ground truth instead).
    gt: uint8 P x 3 x H x W, the source identity rendered under the target AUs (synthetic
    data only), else None.
    """

    pair_ids: list[str]
    source_ids: list[str]
    target_ids: list[str]
    target_aus: torch.Tensor  # float32 P x 17, OpenFace scale [0, 5]
    gt: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.pair_ids)


@dataclass
class FaceDataset:
    ids: list[str]
    images: torch.Tensor  # uint8 N x 3 x H x W
    aus: torch.Tensor  # float32 N x 17, OpenFace scale [0, 5]
    train_ids: list[str]
    test_ids: list[str]
    identities: list[str] | None = None  # person label per image where known (synthetic data)
    pairs: EvalPairs | None = None
    meta: dict = field(default_factory=dict)  # provenance: source, seed, image size, format version
    # Real photos only: the AU judge's own training images (never a GAN's), the emotion label
    # per image ("" where none), and the photos prepare skipped with the reason.
    judge_ids: list[str] | None = None
    emotions: list[str] | None = None
    skipped: list[tuple[str, str]] | None = None
    # Validation: people of their own (disjoint from train, test and the judge's) and their
    # pairs. The learning curve and every recipe choice read these; only `evaluate` reads `pairs`.
    val_ids: list[str] | None = None
    val_pairs: EvalPairs | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def index(self, ids: list[str]) -> torch.Tensor:
        """Row indices of ``ids`` (KeyError names the first unknown id)."""
        pos = {i: n for n, i in enumerate(self.ids)}
        return torch.tensor([pos[i] for i in ids], dtype=torch.long)

    @property
    def train_idx(self) -> torch.Tensor:
        return self.index(self.train_ids)

    @property
    def test_idx(self) -> torch.Tensor:
        return self.index(self.test_ids)

    def split_pairs(self, split: str) -> EvalPairs | None:
        """The evaluation pairs of ``split``: "test" (read once, by ``evaluate``) or "val"."""
        if split not in ("test", "val"):
            raise ValueError(f"split: expected 'test' or 'val', got {split!r}")
        return self.pairs if split == "test" else self.val_pairs

    @property
    def judge_idx(self) -> torch.Tensor:
        """Rows the AU judge may fit on: its own split where there is one, else the training split."""
        return self.index(self.judge_ids) if self.judge_ids else self.train_idx
