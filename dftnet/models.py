"""DFT-Net (ICIP 2019): encoder E, flow decoder F, texture decoder T, warp f; and the critic D.

(Being written: see the generator contract below, shared with baselines/ganimation.py.)
"""

from dataclasses import dataclass, field

import torch


@dataclass
class GeneratorOutput:
    """What every generator returns; both families share this call signature.

    image:     the edit, float in [-1, 1], B x 3 x H x W.
    attention: A, B x 1 x H x W in [0, 1], the weight of the (warped) source in the
               composition: DFT-Net (1-A)*B + A*X_a (Eq. 5); GANimation A*X_s + (1-A)*C.
    parts:     intermediates for figures and regularisers: DFT-Net "X_a", "B", "Phi";
               GANimation "C".
    """

    image: torch.Tensor
    attention: torch.Tensor
    parts: dict = field(default_factory=dict)
