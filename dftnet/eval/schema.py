"""Every metric, named once: key, display name, direction, unit, and what it needs.

The evaluation writer (:mod:`dftnet.eval.evaluate`) fills ``summary[key]`` and, where a metric
has one value per test pair, ``per_pair[key]``; the report (:mod:`dftnet.report`,
:mod:`dftnet.claims`) reads the same keys and prints ``label``. Adding a metric is one
:class:`Metric` line here plus the line in ``evaluate`` that computes it.

Files, one per trained (variant, seed), ``eval/<variant>/seed<k>/metrics.json``::

    {"variant", "seed", "summary": {key: float | None}, "per_pair": {key: [float, ...]},
     "au": {...}, "fid": {...}, "lpips": {...}, "identity": {...}, "paired": {...},
     "protocol": {field: ...}}                      # PROTOCOL_FIELDS, plus "unavailable"

Architecture metrics (inference time, FLOPs) are not per run: the ``timing`` stage measures
each variant once, with its own repeats, in ``eval/timing.json`` (:func:`timing_metrics`);
``metrics/timing.json`` holds only the reference's ratios to the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER, HIGHER, CONTEXT = "lower", "higher", "context"  # which way is better; context: not a score

EYELID_AU = "AU45"  # blink: the paper's Fig. 3 case


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # header in the tables
    better: str  # LOWER | HIGHER | CONTEXT
    unit: str
    fmt: str  # format of one number
    group: str  # the tables are split by group
    per_pair: bool = False  # one value per test pair in metrics["per_pair"][key]: paired CIs possible
    needs: str = ""  # key in protocol["unavailable"] that explains a null ("fid", "lpips", "identity", "paired", "au", "annotator")
    floor: str = ""  # key of this metric's "changed nothing" value (the unedited source), if it has one

    @property
    def higher_is_better(self) -> bool | None:
        return {LOWER: False, HIGHER: True, CONTEXT: None}[self.better]

    @property
    def paired_gt(self) -> bool:
        """Needs ground truth: exists on synthetic data only."""
        return self.needs == "paired"


def _floor(m: Metric, label: str) -> Metric:
    """The "changed nothing" value of ``m``: the same measure of the unedited source (context, not a score)."""
    return Metric(f"{m.key}_source", label, CONTEXT, m.unit, m.fmt, m.group, m.per_pair, m.needs)


_EDIT, _REAL, _GT, _BOX = "Expression edit", "Realism and identity", "Paired with ground truth", "Paired, eye and mouth boxes"
_AU = "AU intensity, 0-5"
_au45 = Metric(f"au_mae_{EYELID_AU}", f"{EYELID_AU} MAE (judge)", LOWER, _AU, "{:.3f}", _EDIT, True, "au",
               f"au_mae_{EYELID_AU}_source")
_au = Metric("au_mae", "AU MAE (judge)", LOWER, _AU, "{:.3f}", _EDIT, True, "au", "au_mae_source")
# Real photos: the MediaPipe AU proxies the dataset was labelled with, read off each edit.
_mp = Metric("au_mae_mp", "AU MAE (MediaPipe proxies)", LOWER, _AU, "{:.3f}", _EDIT, True, "annotator", "au_mae_mp_source")
_gt = [Metric("l1_gt", "L1 to GT", LOWER, "[0,1] intensity", "{:.4f}", _GT, True, "paired", "l1_gt_source"),
       Metric("psnr_gt", "PSNR to GT", HIGHER, "dB", "{:.2f}", _GT, True, "paired", "psnr_gt_source"),
       Metric("ssim_gt", "SSIM to GT", HIGHER, "", "{:.4f}", _GT, True, "paired", "ssim_gt_source")]
_box = [Metric(f"{m}_gt_{r}", f"{m.upper()} {r}", d, u, f, _BOX, True, "paired", f"{m}_gt_{r}_source")
        for r in ("eyes", "mouth") for m, d, u, f in (("l1", LOWER, "[0,1] intensity", "{:.4f}"), ("ssim", HIGHER, "", "{:.4f}"))]

RUN_METRICS: tuple[Metric, ...] = (
    _au,
    _floor(_au, "AU MAE, unedited source"),
    Metric("au_rmse", "AU RMSE (judge)", LOWER, _AU, "{:.3f}", _EDIT, False, "au"),
    Metric("au_mae_critic", "AU MAE (critic)", LOWER, _AU, "{:.3f}", _EDIT, True, "au_critic"),
    _mp,
    _floor(_mp, "AU MAE (MediaPipe), unedited source"),
    Metric("mp_found", "face found (MediaPipe)", CONTEXT, "share of edits", "{:.3f}", _EDIT, True, "annotator"),
    _au45,
    _floor(_au45, f"{EYELID_AU} MAE, unedited source"),
    Metric("fid", "FID", LOWER, "", "{:.2f}", _REAL, False, "fid"),
    Metric("lpips", "LPIPS to source", CONTEXT, "", "{:.3f}", _REAL, True, "lpips"),
    Metric("lpips_gt", "LPIPS to GT", LOWER, "", "{:.3f}", _REAL, True, "lpips"),
    Metric("id_dist", "identity dist.", LOWER, "dlib embedding distance", "{:.3f}", _REAL, True, "identity"),
    Metric("id_share_same", "same-person share", HIGHER, "share of pairs", "{:.3f}", _REAL, True, "identity"),
    Metric("id_dist_other", "dist. between people", CONTEXT, "dlib embedding distance", "{:.3f}", _REAL, False, "identity"),
    *[x for m in _gt for x in (m, _floor(m, f"{m.label.split(' to ')[0]}, unedited source"))],
    *[x for m in _box for x in (m, _floor(m, f"{m.label}, source"))],
)
METRICS = {m.key: m for m in RUN_METRICS}
# What ``dvc metrics show`` lists per variant (means over seeds, ``metrics/<variant>.json``);
# everything else stays in the non-metric ``eval/<variant>/seed<k>/metrics.json``.
HEADLINE = ("au_mae", "au_mae_source", "au_mae_mp", "au_mae_mp_source", "l1_gt", "l1_gt_source", "ssim_gt", "fid")
PER_PAIR_KEYS = tuple(m.key for m in RUN_METRICS if m.per_pair)

# Identity metrics mean something only where different people are further apart than dlib's
# same-person threshold; below it they cannot tell a changed identity from an unchanged one.
IDENTITY_KEYS = ("id_dist", "id_share_same", "id_dist_other")

# ----------------------------------------------------------------- protocol
N_KEY = "n_pairs"  # N behind every per-run number: the evaluated (source, target) test pairs
PROTOCOL_FIELDS: tuple[tuple[str, str], ...] = (
    (N_KEY, "N: evaluated edits (test pairs) per run"),
    ("n_sources", "distinct source images"),
    ("n_test_images", "test images (FID's real set)"),
    ("image_size", "image size (px)"),
    ("seed", "evaluation seed (bootstrap, identity's other person)"),
    ("bootstrap_resamples", "bootstrap resamples per CI"),
    ("image_format", "images as scored"),
    ("resize", "resizing"),
    ("au_scale", "AU scale"),
    ("device", "device"),
    ("device_name", "device name"),
    ("numerics", "threads, deterministic kernels, CPU instruction set"),
    ("versions", "library versions"),
)


# ------------------------------------------------------------------- timing
@dataclass(frozen=True)
class TimingMetric:
    key: str
    label: str
    fmt: str


def timing_metrics(batch_sizes) -> tuple[TimingMetric, ...]:
    """Columns of the architecture table, read from ``eval/timing.json`` (lower is better)."""
    return tuple([TimingMetric(f"ms_per_image_b{b}", f"ms/image, batch {b}", "{:.3f}") for b in batch_sizes]
                 + [TimingMetric("gflops_run", "GFLOPs/image, run size", "{:.3f}"),
                    TimingMetric("gflops_paper", "GFLOPs/image, paper size", "{:.2f}"),
                    TimingMetric("params_paper", "parameters (M), paper size", "{:.2f}")])
