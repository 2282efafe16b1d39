"""The learning curve: the independent AU judge's reading of held-out edits during training.

Every ``train.curve_every`` generator steps the generator edits a fixed set of held-out
**validation** pairs (the first ``train.curve_pairs``; never test pairs, which only
``evaluate`` reads), and one row goes to ``<run>/curve.csv``:

- ``au_mae``: the judge's AU error of the edits against their target AUs (0-5 scale);
- ``au_mae_source``: the same error of the *unedited* sources, the "changed nothing" floor
  (constant along the curve: it depends on neither the generator nor the step);
- ``ratio``: ``au_mae / au_mae_source``; below 1 the generator edits towards the target;
- ``au_mae_critic``: the critic ``D_C``'s own reading of the same edits, which the generator
  is trained to satisfy (Eq. 7), so it is not evidence; shown beside the judge to expose a
  generator that fools ``D_C`` without editing.

The judge is only read here: no gradient reaches it or the generator, the training RNG is not
touched, and nothing chooses a checkpoint from these numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
from torch import nn

from dftnet.runtime import csvlog
from dftnet.training.checkpoints import evaluated_generator
from dftnet.nets.blocks import eval_mode
from dftnet.data.aus import AU_MAX
from dftnet.data.dataset import FaceDataset
from dftnet.runtime.errors import DataError
from dftnet.eval.judge import AUJudge, judge_predict
from dftnet.data.imageops import aus_to_model, to_model, to_uint8

CURVE = "curve.csv"
CURVE_COLUMNS = ("step", "au_mae", "au_mae_source", "ratio", "au_mae_critic", "n_pairs")


class LearningCurve:
    """Appends one row per :meth:`point` to ``path``; on resume keeps rows up to ``keep_until_step``."""

    def __init__(self, path: Path, keep_until_step: int, judge: nn.Module, ds: FaceDataset, n_pairs: int,
                 device: torch.device):
        pairs = ds.val_pairs
        if pairs is None or len(pairs) == 0:
            raise DataError("learning curve: the dataset has no validation pairs (val_pairs.csv): give it a validation "
                            "split (data.folder.val_ids, data.photos.n_val; synthetic data: run prepare again) or set "
                            "train.curve_every: 0")
        n = min(n_pairs, len(pairs))
        # the caller's judge is the AU judge (an AUJudge), passed on as the nn.Module it is typed as in train
        self.path, self.judge, self.device = path, cast(AUJudge, judge.to(device).eval()), device
        self.sources = ds.images[ds.index(pairs.source_ids[:n])]
        self.target = pairs.target_aus[:n].float()
        self.floor = float((judge_predict(self.judge, self.sources, device=device) - self.target).abs().mean())
        csvlog.restart(path, CURVE_COLUMNS, keep_until_step)

    @torch.inference_mode()
    def read(self, G: nn.Module, D: nn.Module) -> dict:
        """Judge and critic errors of ``G``'s edits of the held-out pairs (G, D left as found)."""
        with eval_mode(G, D):
            x = to_model(self.sources.to(self.device))
            edits = to_uint8(G(x, aus_to_model(self.target).to(self.device)).image)
            critic = D(to_model(edits))[1].float().cpu() * AU_MAX
        judge = judge_predict(self.judge, edits.cpu(), device=self.device)
        au_mae = float((judge - self.target).abs().mean())
        return {"au_mae": au_mae, "au_mae_source": self.floor, "ratio": au_mae / self.floor,
                "au_mae_critic": float((critic - self.target).abs().mean()), "n_pairs": len(self.target)}

    def point(self, state) -> dict:
        row = {"step": state.step, **self.read(evaluated_generator(state), state.D)}
        csvlog.append(self.path, CURVE_COLUMNS, {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        return row
