"""Each loss term of Eqs. (6)-(10) against values computed by hand on tiny tensors."""

import pytest
import torch

from dftnet.nets import losses


def test_wgan_terms_eq6():
    d_real = torch.tensor([1.0, 2.0, 3.0])
    d_fake = torch.tensor([[0.0], [1.0]])
    assert losses.critic_wgan_loss(d_real, d_fake).item() == pytest.approx(0.5 - 2.0)
    assert losses.generator_wgan_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_au_condition_loss_eq7_is_mean_over_batch_and_aus():
    pred = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert losses.au_condition_loss(pred, target).item() == pytest.approx((0 + 1 + 4 + 4) / 4)


def test_cycle_loss_eq8_is_mean_l1():
    x = torch.tensor([[1.0, -1.0], [0.5, 0.0]])
    x_rec = torch.tensor([[0.0, -1.0], [-0.5, 0.25]])
    assert losses.cycle_loss(x, x_rec).item() == pytest.approx((1 + 0 + 1 + 0.25) / 4)


def test_flow_smoothness_eq9_squares_sums_per_sample_and_averages_the_batch():
    x = torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]],
                      [[[0.0, 0.0], [0.0, -1.0]]]])  # 2 x 1 x 2 x 2
    # sample 0: horizontal 1^2 + 4^2 = 17, vertical 3^2 + 6^2 = 45 -> 62; sample 1: 1 + 1 = 2
    assert losses.flow_smoothness(x).item() == pytest.approx((62 + 2) / 2)
    # batch-size independent: the same sample repeated gives the same value
    assert losses.flow_smoothness(x[:1].repeat(5, 1, 1, 1)).item() == pytest.approx(62.0)


def test_total_variation_hand_computed():
    x = torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]],
                      [[[0.0, 0.0], [0.0, -1.0]]]])  # 2 x 1 x 2 x 2
    # sample 0: horizontal |2-1| + |8-4| = 5, vertical |4-1| + |8-2| = 9; sample 1: 1 + 1
    assert losses.total_variation(x).item() == pytest.approx(16.0)


def test_total_variation_is_ganimations_mask_smoothness():
    # models/ganimation.py, _compute_loss_smooth: a sum over batch, channels and pixels
    m = torch.rand(3, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    official = (m[:, :, :, :-1] - m[:, :, :, 1:]).abs().sum() + (m[:, :, :-1, :] - m[:, :, 1:, :]).abs().sum()
    assert torch.allclose(losses.total_variation(m), official)
    assert losses.total_variation(torch.full((2, 2, 4, 4), 0.3)).item() == 0.0


def test_attention_loss_eq10_is_mean_of_one_minus_A():
    A = torch.tensor([0.25, 0.75, 1.0, 0.0]).view(1, 1, 2, 2)
    assert losses.attention_loss(A).item() == pytest.approx(0.5)


def test_gradient_penalty_of_a_linear_critic():
    # f(x) = sum(w * x) has gradient w everywhere: penalty (||w|| - 1)^2 for any alpha
    w = torch.zeros(1, 2, 2, 2)
    w[0, 0, 0, 0], w[0, 0, 1, 0], w[0, 1, 1, 1] = 2.0, -2.0, 1.0  # ||w|| = 3
    real, fake = torch.randn(4, 2, 2, 2), torch.randn(4, 2, 2, 2)
    critic = lambda x: (w * x).flatten(1).sum(1)  # noqa: E731
    for alpha in (torch.zeros(4), torch.rand(4), torch.ones(4, 1, 1, 1)):
        assert losses.gradient_penalty(critic, real, fake, alpha).item() == pytest.approx(4.0, rel=1e-5)


def test_gradient_penalty_of_a_quadratic_critic_interpolates_per_sample():
    # f(x) = sum(x^2): gradient 2 x_hat, x_hat = alpha * real + (1 - alpha) * fake per sample
    real = torch.full((2, 1, 2, 2), 1.0)   # per-sample norm 2
    fake = torch.zeros(2, 1, 2, 2)
    alpha = torch.tensor([0.5, 1.0])       # x_hat norms 1 and 2 -> grad norms 2 and 4
    critic = lambda x: (x ** 2).flatten(1).sum(1)  # noqa: E731
    expected = ((2 - 1) ** 2 + (4 - 1) ** 2) / 2
    assert losses.gradient_penalty(critic, real, fake, alpha).item() == pytest.approx(expected)


def test_gradient_penalty_sums_patch_scores_and_backpropagates_into_the_critic():
    w = torch.tensor([[3.0, 4.0]], requires_grad=True)  # ||w|| = 5
    critic = lambda x: (w * x).unsqueeze(-1).expand(-1, -1, 3)  # noqa: E731  three identical "patches"
    real, fake = torch.randn(5, 2), torch.randn(5, 2)
    gp = losses.gradient_penalty(critic, real, fake, torch.rand(5))
    # each of the 3 patches has gradient w: grad of the sum is 3w, norm 15
    assert gp.item() == pytest.approx(14.0 ** 2)
    gp.backward()  # d/dw (3||w|| - 1)^2 = 2 (3||w|| - 1) * 3 w / ||w||
    assert torch.allclose(w.grad, 2 * 14.0 * 3 * w.detach() / 5.0)


def test_terms_are_float32_for_bf16_inputs():
    x = torch.rand(2, 1, 4, 4).bfloat16()
    for term in (losses.total_variation(x), losses.flow_smoothness(x), losses.attention_loss(x), losses.cycle_loss(x, x * 0),
                 losses.critic_wgan_loss(x, x), losses.generator_wgan_loss(x), losses.au_condition_loss(x, x)):
        assert term.dtype == torch.float32 and term.dim() == 0
