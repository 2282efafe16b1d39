"""How far bf16 autocast moves one training step from fp32, the gradient penalty's double backward included.

    python benchmarks/bench_precision.py [--size 128] [--batch 4] [--batches 3] [--device cpu] [--run runs/dftnet/seed0]

One critic step and one generator step of DFT-Net at the paper's widths and depths (or a
trained run's networks with ``--run``), on the same seeded batches, computed three ways:

* ``fp32``: the paper-faithful reference;
* ``bf16``: everything under bf16 autocast (the loss terms themselves are summed in fp32,
  :mod:`dftnet.nets.losses`);
* ``bf16, GP in fp32``: bf16 autocast, but the gradient penalty's critic pass and its double
  backward in fp32 (:func:`dftnet.nets.accel.penalty_precision`).

and the gradient penalty alone on one fixed fake batch, in bf16 against fp32 (the part of the
error the penalty's double backward adds by itself).

For each it prints every loss term's relative error against fp32, and the critic's and the
generator's gradients' relative L2 error and cosine with fp32's. Not a test: the figures depend
on the device's bf16 kernels (CPU figures here; the GPU's may differ, run it there).
"""

import argparse

import torch

from dftnet.nets import accel, losses
from dftnet.config import ModelConfig, LambdaConfig
from dftnet.nets.generators import at_paper_size, build_critic, build_generator
from dftnet.training.train import critic_terms, generator_terms, TrainState, weighted_total


def networks(args, device):
    if args.run:
        from dftnet.training.checkpoints import read_checkpoint
        from dftnet.config import run_config_from_dict

        ckpt = read_checkpoint(f"{args.run}/checkpoint.pt")
        run = run_config_from_dict(ckpt["config"])
        G, D = build_generator(run.model, run.image_size), build_critic(run.model, run.image_size)
        G.load_state_dict(ckpt["G"]), D.load_state_dict(ckpt["D"])
        return G.to(device), D.to(device), run.image_size, run.train.lambdas
    torch.manual_seed(0)
    cfg, size = at_paper_size(ModelConfig())
    size = args.size or size
    return build_generator(cfg, size).to(device), build_critic(cfg, size).to(device), size, LambdaConfig()


def step_grads(state, x, y_s, y_t, lam, alpha, precision: str, device):
    """Loss terms and flattened gradients of one critic and one generator step."""
    fast = accel.Fast(precision="fp32" if precision == "fp32" else "bf16", gp_fp32=precision == "bf16_gp_fp32")
    out = {}
    for net, terms_fn in (("D", lambda: critic_terms(state, x, y_s, y_t, lam, alpha, fast)),
                          ("G", lambda: generator_terms(state, x, y_s, y_t, lam))):
        module = state.D if net == "D" else state.G
        module.zero_grad(set_to_none=True)
        with accel.autocast(fast, device):
            terms = terms_fn()
        weighted_total(terms, lam, x.shape[0]).backward()
        out.update({k: v.item() for k, v in terms.items()})
        out[f"grad_{net}"] = torch.cat([p.grad.flatten().float() for p in module.parameters() if p.grad is not None])
    return out


def compare(name: str, got: torch.Tensor, ref: torch.Tensor) -> dict:
    """Relative L2 error and cosine of two flattened gradients, in float64."""
    got, ref = got.double(), ref.double()
    return {name + "_relerr": ((got - ref).norm() / ref.norm()).item(),
            name + "_cos": (got @ ref / (got.norm() * ref.norm())).item()}


def penalty_alone(D, x, fake, alpha, device, bf16: bool) -> tuple[float, torch.Tensor]:
    """The gradient penalty on a fixed fake, in bf16 autocast or fp32: its value and D's gradient."""
    D.zero_grad(set_to_none=True)
    with accel.autocast(accel.Fast(precision="bf16" if bf16 else "fp32"), device):
        gp = losses.gradient_penalty(lambda z: D(z)[0], x, fake, alpha)
    gp.backward()
    return gp.item(), torch.cat([p.grad.flatten() for p in D.parameters() if p.grad is not None])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=0, help="image size (default: the paper's 128)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run", default="", help="a trained run folder: its networks instead of the paper-size init")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    G, D, size, lam = networks(args, device)
    state = TrainState(G, D, None, None, None, None, torch.Generator(device=device))
    g = torch.Generator().manual_seed(0)
    print(f"{'trained run ' + args.run if args.run else 'paper-size init'}, {size} px, batch {args.batch}, {device}")
    rows, gp_rows = {p: [] for p in ("bf16", "bf16_gp_fp32")}, []
    for _ in range(args.batches):
        x = (torch.rand(args.batch, 3, size, size, generator=g) * 2 - 1).to(device)
        y_s, y_t = torch.rand(args.batch, 17, generator=g).to(device), torch.rand(args.batch, 17, generator=g).to(device)
        alpha = torch.rand(args.batch, 1, 1, 1, generator=g).to(device)
        ref = step_grads(state, x, y_s, y_t, lam, alpha, "fp32", device)
        for p in rows:
            got = step_grads(state, x, y_s, y_t, lam, alpha, p, device)
            row = {}
            for k, v in ref.items():
                if k.startswith("grad_"):
                    row.update(compare(k, got[k], v))
                else:
                    row[k] = abs(got[k] - v) / max(abs(v), 1e-12)
            rows[p].append(row)
        with torch.no_grad():
            fake = G(x, y_t).image.float()
        ref_gp, ref_grad = penalty_alone(D, x, fake, alpha, device, bf16=False)
        got_gp, got_grad = penalty_alone(D, x, fake, alpha, device, bf16=True)
        gp_rows.append({"gp": abs(got_gp - ref_gp) / max(abs(ref_gp), 1e-12), **compare("grad_D", got_grad, ref_grad)})
    print("whole steps, worst over batches (relative error of each term; gradients: relative L2 error, cosine):")
    rows["GP alone, bf16 (same fake)"] = gp_rows
    for p, rs in rows.items():
        keys = rs[0].keys()
        worst = {k: (max(r[k] for r in rs) if not k.endswith("_cos") else min(r[k] for r in rs)) for k in keys}
        print(f"  {p}: " + " ".join(f"{k}={v:.2e}" if not k.endswith('_cos') else f"{k}={v:.5f}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
