"""Loss terms of DFT-Net (Sec. 2.3, Eqs. (6)-(10)), shared with the GANimation baseline.

Every function is pure and returns one *unweighted* scalar; the trainer applies the lambdas
of :class:`dftnet.config.LambdaConfig` in one place and skips a term whose lambda is 0.
Inputs may come out of a bf16 autocast region: each term is computed in float32, since
means over ~10^5 elements and squared gradient norms lose too much in bf16.
"""

from __future__ import annotations

from typing import Callable

import torch

from dftnet.config import RECORDED_ONLY_WHEN_ON

# Stable names of the (unweighted) terms training computes and logs, critic then generator; a
# term whose lambda is 0 is not computed and its log column stays empty.
D_TERMS = ("d_adv", "d_gp", "d_cond")
G_TERMS = ("g_adv", "g_cond", "g_cyc", "g_tv", "g_att", "g_att_tv", "g_flow")
# Terms of lambdas added after runs were recorded (config.RECORDED_ONLY_WHEN_ON): a log carries
# each one's column only when its lambda is on, so the logs of every run without it keep their bytes.
OPTIONAL_G_TERMS = tuple(f"g_{path[-1]}" for path in RECORDED_ONLY_WHEN_ON if path[:2] == ("train", "lambdas"))


# ------------------------------------------------------------------ Eq. (6), WGAN-GP
def critic_wgan_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Eq. (6), critic side: ``mean(D(x_fake)) - mean(D(x_real))`` over batch and patches."""
    return d_fake.float().mean() - d_real.float().mean()


def generator_wgan_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Eq. (6), generator side: ``-mean(D(G(x_s, y_t)))``."""
    return -d_fake.float().mean()


def gradient_penalty(
    critic_scores_fn: Callable[[torch.Tensor], torch.Tensor],  # x -> critic scores (any shape with batch first)
    real: torch.Tensor,                                          # B x C x H x W real images
    fake: torch.Tensor,                                          # B x C x H x W generated images
    alpha: torch.Tensor,                                         # B (or B x 1 x 1 x 1) mixing weights in [0, 1]
) -> torch.Tensor:
    """Eq. (6), the gradient penalty of WGAN-GP (Gulrajani et al. 2017).

    ``x_hat = alpha * real + (1 - alpha) * fake`` (both detached: the penalty trains only the
    critic), and the penalty is ``mean_b (||grad_x D(x_hat)_b||_2 - 1)^2`` with the norm taken
    per sample over all of its dimensions. A PatchGAN critic's scores are summed over patches
    before differentiating, as GANimation's ``grad_outputs=ones`` does. ``create_graph=True``
    so the penalty can itself be back-propagated into the critic. ``alpha`` is an argument so
    the trainer owns the randomness and tests can pin it.
    """
    alpha = alpha.to(real.dtype).reshape(-1, *([1] * (real.dim() - 1)))
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic_scores_fn(x_hat)
    (grad,) = torch.autograd.grad(scores.float().sum(), x_hat, create_graph=True)
    norms = grad.float().flatten(1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()


# ------------------------------------------------------------- Eq. (7), AU condition
def au_condition_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (7): squared error between the critic's AU regression ``D_C`` and the AUs it
    should see, averaged over batch and the 17 AUs (``nn.MSELoss``).

    The critic is trained with the real image's own AUs, the generator with the target AUs.
    GANimation's code weights this term by ``lambda_D_cond / batch_size``; the trainer does that.
    """
    return torch.mean((pred.float() - target.float()) ** 2)


# ------------------------------------------------------------------ Eq. (8), cycle
def cycle_loss(x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    """Eq. (8): mean absolute error between the source and its reconstruction
    ``G(G(x_s, y_t), y_s)`` over all elements (``nn.L1Loss``)."""
    return torch.mean(torch.abs(x.float() - x_rec.float()))


# ------------------------------------------------------- Eq. (9), flow smoothness
def flow_smoothness(Phi: torch.Tensor) -> torch.Tensor:
    """Eq. (9) as the paper writes it: the *squared* differences between neighbouring flow
    vectors, ``sum (Phi[..., :, 1:] - Phi[..., :, :-1])^2 + sum (Phi[..., 1:, :] - Phi[..., :-1, :])^2``,
    summed over the two flow channels and all pixels of one sample, then averaged over the batch.

    The unit of ``Phi`` sets the term's strength; DFT-Net passes its flow in **pixels**
    (``dftnet.nets.models.DFTNet.regularisers``), so a one-pixel step between neighbours costs 1
    whatever the image size, and ``lambdas.tv`` does not depend on the batch size.
    """
    x = Phi.float()
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).flatten(1).sum(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).flatten(1).sum(1)
    return (dx + dy).mean()


def flow_magnitude(Phi: torch.Tensor) -> torch.Tensor:
    """A remedy, not in the paper (``lambdas.flow``): the mean length of the flow vectors,
    ``mean_{b,y,x} ||Phi[b, :, y, x]||_2``, on ``Phi`` in pixels. Eq. (9) penalises only the
    flow's gradients, so a small smooth offset costs nothing there, and bilinear resampling by
    it blurs every pixel it touches; this L1-type (sparsity) term pulls what should not move to
    zero. ``eps`` inside the root keeps the gradient finite at exactly zero flow."""
    x = Phi.float()
    return torch.sqrt(x.pow(2).sum(1) + 1e-12).mean()


def identity_loss(x: torch.Tensor, x_idt: torch.Tensor) -> torch.Tensor:
    """A remedy, not in either paper (``lambdas.idt``): mean absolute error between the source
    and its edit toward its *own* AUs, ``G(x_s, y_s)``, over all elements. Asked for no change,
    the generator should change nothing: the identity term of CycleGAN and StarGAN v2. It pulls
    toward zero the change every edit makes everywhere (DFT-Net's resampling flow and texture
    bands, GANimation's colour noise), which no other term sees directly."""
    return torch.mean(torch.abs(x.float() - x_idt.float()))


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """GANimation's mask smoothness (``_compute_loss_smooth`` in ``models/ganimation.py``):
    ``sum |x[..., :, 1:] - x[..., :, :-1]| + sum |x[..., 1:, :] - x[..., :-1, :]|`` over batch,
    channels and pixels. A sum, not a mean, as in the official code: it grows with the batch
    size and the image area, and GANimation's ``lambda_mask_smooth`` (1e-5) is tuned for that.
    Used for attention masks (``lambdas.att_tv``), not for DFT-Net's flow (see :func:`flow_smoothness`).
    """
    x = x.float()
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().sum()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().sum()
    return dx + dy


# ------------------------------------------------------------- Eq. (10), attention
def attention_loss(A: torch.Tensor) -> torch.Tensor:
    """Eq. (10): the paper maximises the attention, ``-E[||A||_1]``; this is ``mean(1 - A)``
    over batch and pixels, the same objective up to a constant and a per-pixel scale.

    In DFT-Net's composition (Eq. (5)) ``A`` weights the warped source ``X_a`` and ``1 - A``
    the synthesised texture ``B``. Rewarding ``A`` keeps texture synthesis sparse: the network
    should move pixels where it can and repaint only what warping cannot explain (teeth, mouth
    interiors, shading). Without the term, ``A -> 0`` lets ``T`` repaint the whole face and the
    deformation branch is bypassed. Note: ``Phi`` starts at zero (the identity warp), so
    without this term (the ``no_att_loss`` ablation) little pulls the flow away from its
    initial state; that ablation measures the initialisation as much as Eq. (10).
    """
    return torch.mean(1.0 - A.float())
