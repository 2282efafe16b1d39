"""The paper's qualitative figures (Figs. 3-5) and the training curves, as PNG grids.

Every figure is a grid of image cells with column titles and row labels, drawn with
matplotlib's Agg backend and written atomically (:mod:`dftnet.runtime.atomic`). Generators run in
eval mode under ``torch.inference_mode``; their training flag is restored afterwards.
Generators follow the shared contract ``gen(x in [-1, 1], aus in [0, 1]) -> GeneratorOutput``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dftnet.runtime import atomic  # noqa: E402
from dftnet.data.aus import AU_INDEX, AU_MAX  # noqa: E402
from dftnet.data.dataset import FaceDataset  # noqa: E402
from dftnet.runtime.errors import DataError  # noqa: E402
from dftnet.eval.paired import box_to_slices  # noqa: E402
from dftnet.data.imageops import aus_to_model, to_model, to_uint8  # noqa: E402
from dftnet.nets.blocks import eval_mode  # noqa: E402
from dftnet.nets.losses import D_TERMS, G_TERMS, OPTIONAL_G_TERMS  # noqa: E402
from dftnet.reporting.results import NAMES, display_name as _name  # noqa: E402
AU45 = AU_INDEX["AU45"]
EYES_OPEN_BELOW = 1.0  # AU45 intensity (0-5) under which a source counts as eyes open
EYES_CLOSED_ABOVE = 2.5  # ... and above which as eyes closed
Cell = np.ndarray | None  # H x W x 3 uint8 (colour) or H x W float in [0, 1] (a mask); None: blank


# ----------------------------------------------------------------------- helpers
def _ordered(gens: Mapping[str, nn.Module]) -> list[str]:
    """DFT-Net, then GANimation, then the other variants in the caller's order."""
    return [k for k in NAMES if k in gens] + [k for k in gens if k not in NAMES]


def interpolate_aus(source_aus: torch.Tensor, target_aus: torch.Tensor, alpha: float) -> torch.Tensor:
    """Fig. 5's intermediate targets: source + alpha * (target - source); alpha = 0 is the source."""
    return source_aus + alpha * (target_aus - source_aus)


@contextlib.contextmanager
def _evaluating(gens: Sequence[nn.Module], device: str = "cpu"):
    """Eval mode on ``device`` for the block; the caller's modes and devices come back afterwards."""
    homes = [next(g.parameters(), torch.empty(0)).device for g in gens]
    try:
        for g in gens:
            g.to(device)
        with eval_mode(*gens), torch.inference_mode():
            yield
    finally:
        for g, home in zip(gens, homes):
            g.to(home)


def _run(gen: nn.Module, images: torch.Tensor, aus: torch.Tensor, device: str):
    """uint8 images and AUs in [0, 5] -> the generator's output, moved to the CPU."""
    out = gen(to_model(images).to(device), aus_to_model(aus).to(device))
    out.image = out.image.cpu()
    out.attention = out.attention.cpu()
    out.parts = {k: v.cpu() for k, v in out.parts.items()}
    return out


def edit_images(gen: nn.Module, images: torch.Tensor, aus: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """uint8 N x 3 x H x W sources edited to AUs in [0, 5] -> uint8 edits."""
    with _evaluating([gen], device):
        return to_uint8(_run(gen, images, aus, device).image)


def _rgb(img: torch.Tensor) -> np.ndarray:
    """uint8 3 x H x W, or float [-1, 1] 3 x H x W -> uint8 H x W x 3."""
    if img.dtype != torch.uint8:
        img = to_uint8(img)
    return img.permute(1, 2, 0).numpy()


def _mask(a: torch.Tensor) -> np.ndarray:
    return a.float().squeeze(0).clamp(0, 1).numpy()


def _crop(cell: Cell, box: Sequence[float], scale: int) -> Cell:
    """Crop a normalised (x0, y0, x1, y1) box and upscale by an integer factor, nearest neighbour."""
    if cell is None:
        return None
    rows, cols = box_to_slices(box, cell.shape[0])  # the same pixels the eye-region metrics read
    return cell[rows, cols].repeat(scale, axis=0).repeat(scale, axis=1)


def _save(fig, out_path: Path) -> None:
    try:
        atomic.write_with(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def draw_grid(cells: Sequence[Sequence[Cell]], col_titles: Sequence[str], row_labels: Sequence[str],
              out_path: Path, title: str = "", cell_in: float = 1.35) -> None:
    """The one renderer: rows x columns of images, titles on top, labels on the left."""
    n_rows, n_cols = len(cells), len(col_titles)
    shapes = [c.shape for row in cells for c in row if c is not None]
    aspect = shapes[0][1] / shapes[0][0] if shapes else 1.0  # cells keep the images' proportions
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, gridspec_kw=dict(wspace=0.04, hspace=0.06),
                             figsize=(cell_in * aspect * n_cols * 1.04 + 1.3,
                                      cell_in * n_rows * 1.06 + 0.5 + 0.3 * bool(title)))
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if cell is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", color="0.5", transform=ax.transAxes)
                ax.set_facecolor("0.95")
            elif cell.ndim == 2:
                ax.imshow(cell, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(cell, interpolation="nearest")
            if r == 0:
                ax.set_title(col_titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center", labelpad=4)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=1.2 / fig.get_figwidth(), right=0.99, bottom=0.02,
                        top=1 - (0.35 + 0.3 * bool(title)) / fig.get_figheight())
    _save(fig, out_path)


# ------------------------------------------------------------------- Fig. 3
def _eyelid_block(gens: Mapping[str, nn.Module], ds: FaceDataset, idx: torch.Tensor, au45: float,
                  ground_truth: Callable | None, device: str) -> list[list[Cell]]:
    src = ds.images[idx]
    target = ds.aus[idx].clone()
    target[:, AU45] = au45
    outs = {k: _run(gens[k], src, target, device) for k in _ordered(gens)}
    warp = next((o.parts["X_a"] for o in outs.values() if "X_a" in o.parts), None)
    rows = []
    for i, n in enumerate(idx.tolist()):
        row: list[Cell] = [_rgb(src[i]), None if warp is None else _rgb(warp[i])]
        row += [_rgb(outs[k].image[i]) for k in outs]
        if ground_truth is not None:
            row.append(_rgb(ground_truth(n, target[i])))
        rows.append(row)
    return rows


def fig3_eyelids(gens: dict[str, nn.Module], ds: FaceDataset, out_path: Path, eye_box: Sequence[float],
                 n_rows: int = 4, ground_truth: Callable | None = None, device: str = "cpu") -> None:
    """Fig. 3: eyelids (AU45). Open eyes closed (AU45 -> 5); then closed eyes opened (AU45 -> 0) if any.

    ground_truth: optional (dataset row index, target AUs in [0, 5]) -> uint8 3 x H x W render.
    """
    test = ds.test_idx
    au45 = ds.aus[test, AU45]
    blocks = [(test[au45 < EYES_OPEN_BELOW][torch.argsort(au45[au45 < EYES_OPEN_BELOW])][:n_rows], AU_MAX, "close"),
              (test[au45 > EYES_CLOSED_ABOVE][torch.argsort(-au45[au45 > EYES_CLOSED_ABOVE])][:n_rows], 0.0, "open")]
    blocks = [b for b in blocks if len(b[0])]
    if not blocks:
        raise DataError("fig3_eyelids: no test image has AU45 below "
                        f"{EYES_OPEN_BELOW} or above {EYES_CLOSED_ABOVE}")
    cells, labels = [], []
    with _evaluating(list(gens.values()), device):
        for idx, value, verb in blocks:
            cells += _eyelid_block(gens, ds, idx, value, ground_truth, device)
            labels += [f"{verb}: {ds.ids[n]}\nAU45 {ds.aus[n, AU45]:.1f}→{value:.0f}" for n in idx.tolist()]
    box_px = max(1.0, (eye_box[2] - eye_box[0]) * ds.image_size)
    scale = max(1, int(round(128 / box_px)))
    cells = [[_crop(c, eye_box, scale) for c in row] for row in cells]
    titles = ["source", "aligned X_a\n(DFT-Net warp)"] + [_name(k) for k in _ordered(gens)]
    titles += ["ground truth"] if ground_truth is not None else []
    draw_grid(cells, titles, labels, out_path, title="Eyelids (AU45): eye region, nearest-neighbour upscaled")


# ------------------------------------------------------------------- Fig. 4
def _target_cell(ds: FaceDataset, p: int) -> Cell:
    pairs = ds.pairs
    assert pairs is not None  # fig4_intermediate checked
    if pairs.target_ids[p]:
        return _rgb(ds.images[ds.index([pairs.target_ids[p]])[0]])
    return None if pairs.gt is None else _rgb(pairs.gt[p])


def fig4_intermediate(dftnet_gen: nn.Module, ganimation_gen: nn.Module, ds: FaceDataset, pairs_idx: Sequence[int],
                      out_path: Path, device: str = "cpu") -> None:
    """Fig. 4: DFT-Net's intermediates (X_a, texture B, attention A) next to GANimation's (C, A)."""
    if ds.pairs is None:
        raise DataError("fig4_intermediate: the dataset has no evaluation pairs")
    pairs = ds.pairs
    pidx = torch.as_tensor(list(pairs_idx), dtype=torch.long)
    src = ds.images[ds.index([pairs.source_ids[p] for p in pidx.tolist()])]
    target = pairs.target_aus[pidx]
    with _evaluating([dftnet_gen, ganimation_gen], device):
        d = _run(dftnet_gen, src, target, device)
        g = _run(ganimation_gen, src, target, device)
    from_images = any(pairs.target_ids[p] for p in pidx.tolist())
    show_gt = pairs.gt is not None and from_images  # else the target column already is the ground truth
    cells = []
    for i, p in enumerate(pidx.tolist()):
        row = [_rgb(src[i]), _target_cell(ds, p),
               _rgb(d.parts["X_a"][i]) if "X_a" in d.parts else None,
               _rgb(d.parts["B"][i]) if "B" in d.parts else None,
               _mask(d.attention[i]), _rgb(d.image[i]),
               _rgb(g.parts["C"][i]) if "C" in g.parts else None,
               _mask(g.attention[i]), _rgb(g.image[i])]
        if show_gt:
            assert pairs.gt is not None  # show_gt
            row.append(_rgb(pairs.gt[p]))
        cells.append(row)
    titles = ["source", "target" if from_images else "target\n(ground truth)", "aligned X_a", "texture B",
              "attention A\n(white: X_a)", "DFT-Net", "GANimation\ncolour C", "GANimation A\n(white: source)",
              "GANimation"] + (["ground truth"] if show_gt else [])
    draw_grid(cells, titles, [pairs.pair_ids[p] for p in pidx.tolist()], out_path,
              title="Intermediate results: DFT-Net = (1-A)·B + A·X_a; GANimation = A·X_s + (1-A)·C")


# ------------------------------------------------------------------- Fig. 5
def _interp_rows(ds: FaceDataset, n_rows: int):
    """Sources (uint8), their AUs, target AUs, target cells and row labels.

    The evaluation pairs where the dataset has them, else test images each paired with the next.
    """
    if ds.pairs is not None and len(ds.pairs):
        n = min(n_rows, len(ds.pairs))
        s = ds.index(ds.pairs.source_ids[:n])
        return (ds.images[s], ds.aus[s], ds.pairs.target_aus[:n], [_target_cell(ds, p) for p in range(n)],
                ds.pairs.pair_ids[:n])
    test = ds.test_idx
    n = min(n_rows, len(test))
    s, t = test[:n], test.roll(-1)[:n]
    return ds.images[s], ds.aus[s], ds.aus[t], [_rgb(ds.images[j]) for j in t], [ds.ids[j] for j in s]


def fig5_interpolation(gens: dict[str, nn.Module], ds: FaceDataset, out_path: Path,
                       alphas: Sequence[float] = (0.5, 0.75, 1.0), n_rows: int = 3, device: str = "cpu") -> None:
    """Fig. 5: edits towards the target at source + alpha * (target - source), one block per generator."""
    src, source_aus, target, target_cells, labels = _interp_rows(ds, n_rows)
    cells = [[_rgb(src[i]), target_cells[i]] for i in range(len(src))]
    titles = ["source", "target"]
    with _evaluating(list(gens.values()), device):
        for k in _ordered(gens):
            for a in alphas:
                out = to_uint8(_run(gens[k], src, interpolate_aus(source_aus, target, a), device).image)
                for i in range(len(src)):
                    cells[i].append(_rgb(out[i]))
                titles.append(f"{_name(k)}\nα = {a:g}")
    draw_grid(cells, titles, labels, out_path, title="Interpolation: target AUs = source + α·(target - source)")


# -------------------------------------------------------------- training curves
def read_log(path: Path) -> pd.DataFrame:
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot read training log ({err})") from err
    if "step" not in df.columns:
        raise DataError(f"{path}: training log has no 'step' column")
    return df


def training_curves(logs: dict[str, Path], out_path: Path, smooth: int = 0) -> None:
    """Small multiples, one per loss term logged; one colour per variant, a thin line per seed.

    logs: run label -> log.csv; the label's part before "/" names the variant ("dftnet/seed0").
    smooth: rolling-mean window in log rows for the thick seed-mean line (0: about 1/20 of the run).
    """
    frames = {label: read_log(p) for label, p in logs.items()}
    if not frames:
        raise DataError("training_curves: no logs given")
    terms = [c for c in D_TERMS + G_TERMS + OPTIONAL_G_TERMS  # losses only: throughput is wall-clock, kept out of the reports
             if any(c in df.columns and df[c].notna().any() for df in frames.values())]
    if not terms:
        raise DataError("training_curves: no loss column has a value in any log")
    variants = list(dict.fromkeys(label.split("/")[0] for label in frames))
    colours = {v: plt.cm.tab10(i % 10) for i, v in enumerate(variants)}
    n_cols = min(3, len(terms))
    n_rows = -(-len(terms) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 2.8 * n_rows), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        for v in variants:
            runs = [df[["step", term]].dropna() for label, df in frames.items()
                    if label.split("/")[0] == v and term in df.columns]
            runs = [r for r in runs if len(r)]
            if not runs:
                continue
            for r in runs:
                ax.plot(r["step"], r[term], color=colours[v], lw=0.6, alpha=0.35)
            mean = pd.concat(runs).groupby("step")[term].mean()
            window = smooth or max(1, len(mean) // 20)
            ax.plot(mean.index, mean.rolling(window, min_periods=1, center=True).mean(), color=colours[v],
                    lw=1.8, label=_name(v))
        ax.set_title(term, fontsize=10)
        ax.set_xlabel("generator step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    legend: dict[str, Any] = {}  # label -> handle
    for ax in axes.flat:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    names, handles = list(legend), list(legend.values())
    top = 1 - 0.6 / fig.get_figheight()  # room for the title and the legend, whatever the grid's height
    fig.suptitle("Training losses (thin: each seed; thick: seed mean, smoothed)", fontsize=11,
                 y=1 - 0.08 / fig.get_figheight(), va="top")
    fig.legend(handles, names, loc="upper center", ncol=min(len(variants), 6), fontsize=9, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.35 / fig.get_figheight()))
    fig.tight_layout(rect=(0, 0, 1, top))
    _save(fig, out_path)


def learning_curves(curves: dict[str, Path], out_path: Path) -> None:
    """The judge's AU error of held-out edits vs generator steps (``<run>/curve.csv``), one
    panel per variant: the seed mean as a thick line, the band between the seeds' lowest and
    highest value, each seed thin, the "changed nothing" floor (unedited sources) dashed, 0.7
    of it (the suite's learning target) dotted, and the critic's own reading thin grey.

    curves: run label -> curve.csv; the label's part before "/" names the variant ("dftnet/seed0").
    """
    frames = {label: read_log(p) for label, p in curves.items()}
    if not frames:
        raise DataError("learning_curves: no curve.csv given")
    variants = list(dict.fromkeys(label.split("/")[0] for label in frames))
    n_cols = min(3, len(variants))
    n_rows = -(-len(variants) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.0 * n_rows), squeeze=False, sharey=True)
    for ax, v in zip(axes.flat, variants):
        runs = [df for label, df in frames.items() if label.split("/")[0] == v]
        wide = pd.concat([r.set_index("step")["au_mae"] for r in runs], axis=1)
        for r in runs:
            ax.plot(r["step"], r["au_mae"], color="C0", lw=0.6, alpha=0.5)
            ax.plot(r["step"], r["au_mae_critic"], color="0.55", lw=0.6, alpha=0.6)
        ax.fill_between(wide.index, wide.min(axis=1), wide.max(axis=1), color="C0", alpha=0.2, lw=0)
        ax.plot(wide.index, wide.mean(axis=1), color="C0", lw=2, label="judge: edit vs target (seed mean)")
        floor = float(np.mean([r["au_mae_source"].iloc[0] for r in runs]))
        ax.axhline(floor, color="C3", ls="--", lw=1.2, label="floor: unedited source")
        ax.axhline(0.7 * floor, color="C3", ls=":", lw=1, label="target: 0.7 x floor")
        ax.plot([], [], color="0.55", lw=0.6, label="critic D_C's own reading")
        ax.set_title(f"{_name(v)} ({len(runs)} seeds)", fontsize=10)
        ax.set_xlabel("generator step", fontsize=8)
        ax.set_ylabel("AU MAE (0-5)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(variants):]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    top = 1 - 0.7 / fig.get_figheight()
    fig.suptitle("Learning curves: the independent judge's AU error of held-out edits", fontsize=11,
                 y=1 - 0.08 / fig.get_figheight(), va="top")
    fig.legend(handles, names, loc="upper center", ncol=4, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.35 / fig.get_figheight()))
    fig.tight_layout(rect=(0, 0, 1, top))
    _save(fig, out_path)


def au_response(runs, out_path: Path) -> None:
    """Asked change vs read change per AU (``reports/figures/au_response.png``): for each AU, the
    mean progress over the test pairs that ask it to rise (top) or fall (bottom) by >= 1 step,
    every variant (seed mean, the seeds as dots) beside the ground truth and the neutral face. 1 =
    the whole asked change, 0 = none; the judge reads it (on photos, the MediaPipe AU proxies).

    runs: :class:`dftnet.reporting.results.Runs`.
    """
    reader = "judge" if any((r.progress or {}).get("judge") for r in runs.runs) else "annotator"

    def per_au(run, ref: str, way: str) -> dict:
        return run.progress_per_au(reader, ref, way)

    variants = runs.variants()
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.4), sharey=False)
    for ax, way in zip(axes, ("raise", "lower")):
        rows = {_name(v): [per_au(r, "edit", way) for r in runs.of(v).values()] for v in variants}
        refs = {"ground truth": [per_au(r, "gt", way) for r in runs.runs],
                "neutral face": [per_au(r, "neutral", way) for r in runs.runs]}
        aus = sorted({a for series in (*rows.values(), *refs.values()) for d in series for a in d})
        series = {**rows, **{k: v for k, v in refs.items() if any(v)}}
        width = 0.8 / max(len(series), 1)
        for k, (label, per_seed) in enumerate(series.items()):
            x = np.arange(len(aus)) + (k - (len(series) - 1) / 2) * width
            means = [np.mean([d[a] for d in per_seed if a in d]) if any(a in d for d in per_seed) else np.nan
                     for a in aus]
            colour = {"ground truth": "0.2", "neutral face": "0.65"}.get(label, f"C{k}")
            ax.bar(x, means, width, label=label, color=colour)
            if label not in refs:
                for d in per_seed:
                    ax.plot(x, [d.get(a, np.nan) for a in aus], ".", color="k", ms=2)
        ax.axhline(0, color="k", lw=0.6)
        ax.axhline(1, color="k", lw=0.6, ls=":")
        ax.set_xticks(np.arange(len(aus)), aus, fontsize=8)
        ax.set_ylabel(f"{way} progress", fontsize=9)
        ax.set_title(f"AUs asked to {'rise' if way == 'raise' else 'fall'} by >= 1 step: share of the asked change "
                     f"the {reader} reads (1 = all of it)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncol=4, frameon=False)
    fig.tight_layout()
    _save(fig, out_path)


def report_figures(runs, gens: dict[str, nn.Module], ds: FaceDataset, run_dirs: dict[str, Path], fig_dir: Path) -> None:
    """The report stage's figure grids: ``gens`` one generator per variant (the first seed),
    ``run_dirs`` every run's folder by label (``"dftnet/seed0"``), for the training and learning
    curves. Fig. 4 needs both DFT-Net and GANimation; the learning curves, every run's curve.csv."""
    from dftnet.data.synth import REGIONS
    from dftnet.data.synth_dataset import ground_truth_renderer

    fig_dir.mkdir(parents=True, exist_ok=True)
    au_response(runs, fig_dir / "au_response.png")
    fig3_eyelids(gens, ds, fig_dir / "fig3_eyelids.png", REGIONS["eyes"], ground_truth=ground_truth_renderer(ds))
    if "dftnet" in gens and "ganimation" in gens:
        assert ds.pairs is not None  # the evaluated dataset has its test pairs
        fig4_intermediate(gens["dftnet"], gens["ganimation"], ds, list(range(min(4, len(ds.pairs)))),
                          fig_dir / "fig4_intermediate.png")
    fig5_interpolation(gens, ds, fig_dir / "fig5_interpolation.png")
    training_curves({label: d / "log.csv" for label, d in run_dirs.items()}, fig_dir / "training_curves.png")
    curves = {label: d / "curve.csv" for label, d in run_dirs.items()}
    if all(p.exists() for p in curves.values()):
        learning_curves(curves, fig_dir / "learning_curves.png")
