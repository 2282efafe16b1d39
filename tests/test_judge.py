"""The AU judge learns, is scored on held-out identities, and round-trips through disk."""

from __future__ import annotations

import pytest
import torch

from dftnet.config import JudgeConfig
from dftnet.data.aus import N_AUS
from dftnet.data.dataset import FaceDataset
from dftnet.runtime.errors import DataError
from dftnet.eval.judge import AUJudge, judge_predict, load_judge, save_judge, split_identities, train_judge


pytestmark = pytest.mark.usefixtures("one_thread")

def patch_dataset(n_people: int = 10, per_person: int = 24, size: int = 32, seed: int = 0) -> FaceDataset:
    """AU01, AU02, AU04 are the red, green and blue brightness of a central patch on a noisy
    background (the other AUs stay 0): learnable in seconds."""
    g = torch.Generator().manual_seed(seed)
    n = n_people * per_person
    aus = torch.zeros(n, N_AUS)
    aus[:, :3] = 5 * torch.rand(n, 3, generator=g)
    img = 60 * torch.rand(n, 3, size, size, generator=g)
    c = slice(size // 4, 3 * size // 4)
    img[:, :, c, c] += (aus[:, :3] * 39)[:, :, None, None]
    ids = [f"i{i:03d}" for i in range(n)]
    who = [f"p{i // per_person}" for i in range(n)]
    split = n * 8 // 10
    return FaceDataset(ids=ids, images=img.clamp(0, 255).to(torch.uint8), aus=aus, train_ids=ids[:split],
                       test_ids=ids[split:], identities=who)


def test_judge_learns_and_is_scored_on_unseen_identities(tmp_path):
    ds = patch_dataset()
    cfg = JudgeConfig(epochs=8, batch_size=16, lr=3e-3, base_channels=8, val_fraction=0.25)
    judge, report = train_judge(ds, cfg)
    fit, held = split_identities(ds, cfg.val_fraction, cfg.seed)
    who = [ds.identities[i] for i in range(len(ds))]
    assert not {who[i] for i in fit.tolist()} & {who[i] for i in held.tolist()} and len(held) > 0
    for part in ("heldout", "test"):
        q = report[part]
        assert q["mean_mae"] < 0.5 * q["mean_mae_predict_median"], part
        for au in ("AU01", "AU02", "AU04"):
            a = q["per_au"][au]
            assert a["mae"] < 0.4 * a["label_std"] and a["pearson_r"] > 0.9, (part, au, a)
        assert q["per_au"]["AU45"]["pearson_r"] is None  # constant labels have no correlation
    pred = judge_predict(judge, ds.images[:5])
    assert pred.shape == (5, N_AUS) and pred.min() >= 0 and pred.max() <= 5
    path = tmp_path / "judge.pt"
    save_judge(path, judge, cfg, ds.image_size)
    assert torch.equal(judge_predict(load_judge(path), ds.images[:5]), pred)
    assert not list(tmp_path.glob("*.tmp"))


def test_judge_training_is_seeded():
    ds = patch_dataset(n_people=4, per_person=8)
    cfg = JudgeConfig(epochs=1, batch_size=8, base_channels=4, val_fraction=0.25)
    a, _ = train_judge(ds, cfg)
    b, _ = train_judge(ds, cfg)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_judge_shapes_and_bad_checkpoint(tmp_path):
    assert AUJudge(8, 64)(torch.zeros(2, 3, 64, 64)).shape == (2, N_AUS)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="bad.pt"):
        load_judge(tmp_path / "bad.pt")
    with pytest.raises(DataError, match="not found"):
        load_judge(tmp_path / "missing.pt")
