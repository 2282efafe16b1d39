"""Every metric, named once: key, display name, direction, unit, and what it needs.

The evaluation writer (:mod:`dftnet.eval.evaluate`) fills ``summary[key]`` and, where a metric
has one value per test pair, ``per_pair[key]``; the report (:mod:`dftnet.reporting.report`,
:mod:`dftnet.reporting.claims`) reads the same keys and prints ``label``. Adding a metric is one
:class:`Metric` line here plus the line in ``evaluate`` that computes it.

Files, one per trained (variant, seed), ``eval/<variant>/seed<k>/metrics.json``::

    {"variant", "seed", "summary": {key: float | None}, "per_pair": {key: [float, ...]},
     "au": {...}, "fid": {...}, "lpips": {...}, "identity": {...}, "paired": {...},
     "protocol": {field: ...}}                      # PROTOCOL_FIELDS, plus "unavailable"

Architecture metrics (inference time, FLOPs) are not per run: the ``timing`` stage measures
each variant once, with its own repeats, in ``timing/timing.json`` (:func:`timing_metrics`);
``metrics/timing.json`` holds only the reference's ratios to the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER, HIGHER, CONTEXT = "lower", "higher", "context"  # which way is better; context: not a score

EYELID_AU = "AU45"  # blink: the paper's Fig. 3 case
HALO_PX = 3  # px at the run's size: the unchanged region "far from the edit" starts this far from any changed pixel


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
    neutral: str = ""  # key of its "erased the expression" value (the neutral face), if it has one
    ceiling: str = ""  # key of the true edit's value (the ground truth read the same way), if it has one

    @property
    def higher_is_better(self) -> bool | None:
        return {LOWER: False, HIGHER: True, CONTEXT: None}[self.better]

    @property
    def paired_gt(self) -> bool:
        """Needs ground truth: exists on synthetic data only."""
        return self.needs == "paired"


def _floor(m: Metric, label: str, suffix: str = "source", needs: str = "") -> Metric:
    """A reference value of ``m`` (context, not a score): the same measure of the unedited source
    (``_source``, "changed nothing"), of the neutral face (``_neutral``, "erased the expression")
    or of the ground truth (``_gt``, the measure's ceiling)."""
    return Metric(f"{m.key}_{suffix}", label, CONTEXT, m.unit, m.fmt, m.group, m.per_pair, needs or m.needs)


def _refs(m: Metric, what: str, neutral: bool = True, gt: bool = False) -> list[Metric]:
    """``m`` and its reference values: the unedited source, the neutral face, the ground truth."""
    out = [m, _floor(m, f"{what}, unedited source")]
    if neutral:
        out.append(_floor(m, f"{what}, neutral face", "neutral"))
    if gt:
        out.append(_floor(m, f"{what}, ground truth", "gt", "paired"))
    return out


_EDIT, _REAL, _GT, _BOX = "Expression edit", "Realism and identity", "Paired with ground truth", "Paired, eye and mouth boxes"
_AU = "AU intensity, 0-5"
_au45 = Metric(f"au_mae_{EYELID_AU}", f"{EYELID_AU} MAE (judge)", LOWER, _AU, "{:.3f}", _EDIT, True, "au",
               f"au_mae_{EYELID_AU}_source")
_au = Metric("au_mae", "AU MAE (judge)", LOWER, _AU, "{:.3f}", _EDIT, True, "au", "au_mae_source", "au_mae_neutral",
             "au_mae_gt")
# Real photos: the MediaPipe AU proxies the dataset was labelled with, read off each edit.
_mp = Metric("au_mae_mp", "AU MAE (MediaPipe proxies)", LOWER, _AU, "{:.3f}", _EDIT, True, "annotator", "au_mae_mp_source",
             "au_mae_mp_neutral")
# Signed AU response: for every (pair, AU) asked to change by >= 1 intensity step, the progress
# (reading of the edit - reading of the source) / (target - source label); a pair's value is the
# mean over its asked raises (lowers), the run's the mean over the pairs that ask any. 1 = the
# whole asked change, 0 = none; the neutral face scores <= 0 on raises, so erasing cannot pass.
_PROG = "share of the asked change"
_raise = Metric("au_raise", "AU raise progress (judge)", HIGHER, _PROG, "{:+.3f}", _EDIT, True, "au", "au_raise_source",
                "au_raise_neutral", "au_raise_gt")
_lower = Metric("au_lower", "AU lower progress (judge)", HIGHER, _PROG, "{:+.3f}", _EDIT, True, "au", "au_lower_source",
                "au_lower_neutral", "au_lower_gt")
_raise_mp = Metric("au_raise_mp", "AU raise progress (MediaPipe)", HIGHER, _PROG, "{:+.3f}", _EDIT, True, "annotator",
                   "au_raise_mp_source", "au_raise_mp_neutral")
_lower_mp = Metric("au_lower_mp", "AU lower progress (MediaPipe)", HIGHER, _PROG, "{:+.3f}", _EDIT, True, "annotator",
                   "au_lower_mp_source", "au_lower_mp_neutral")
# Paired pixels on two masks of each pair: the raise mask (the ground truth differs from both the
# source and the neutral face by > MASK_TOL on some channel: where the target's own features
# appear; neither copying nor erasing passes it) and the unchanged region (the ground truth
# equals the source within MASK_TOL on every channel: any change there is an artifact).
_l1_raise = Metric("l1_raise", "L1 to GT, raise mask", LOWER, "[0,1] intensity", "{:.4f}", _GT, True, "paired",
                   "l1_raise_source", "l1_raise_neutral")
_l1_unch = Metric("l1_unchanged", "L1 to GT, unchanged region", LOWER, "[0,1] intensity", "{:.5f}", _GT, True, "paired",
                  "l1_unchanged_source", "l1_unchanged_neutral")
# Where the unchanged region's error comes from (dftnet.eval.response.unchanged_parts).
_PARTS = "Unchanged region, by part"
_far = Metric("l1_unchanged_far", f"L1 to GT, unchanged region beyond {HALO_PX} px of the edit", LOWER,
              "[0,1] intensity", "{:.5f}", _PARTS, True, "paired", "l1_unchanged_far_source")
_parts = [_far, _floor(_far, "L1 unchanged region far from the edit, unedited source"),
          Metric("copied_unchanged", "copied exactly, unchanged region", HIGHER, "share of pixels", "{:.3f}", _PARTS, True,
                 "paired"),
          Metric("synth_unchanged", "synthesis weight 1-A, unchanged region", CONTEXT, "[0,1]", "{:.4f}", _PARTS, True,
                 "paired"),
          Metric("flow_unchanged", "flow length, unchanged region", CONTEXT, "px", "{:.3f}", _PARTS, True, "parts"),
          Metric("l1_unchanged_warp", "L1 to GT of X_a alone, unchanged region", CONTEXT, "[0,1] intensity", "{:.5f}",
                 _PARTS, True, "parts")]
_gt = [Metric("l1_gt", "L1 to GT", LOWER, "[0,1] intensity", "{:.4f}", _GT, True, "paired", "l1_gt_source"),
       Metric("psnr_gt", "PSNR to GT", HIGHER, "dB", "{:.2f}", _GT, True, "paired", "psnr_gt_source"),
       Metric("ssim_gt", "SSIM to GT", HIGHER, "", "{:.4f}", _GT, True, "paired", "ssim_gt_source")]
_box = [Metric(f"{m}_gt_{r}", f"{m.upper()} {r}", d, u, f, _BOX, True, "paired", f"{m}_gt_{r}_source")
        for r in ("eyes", "mouth") for m, d, u, f in (("l1", LOWER, "[0,1] intensity", "{:.4f}"), ("ssim", HIGHER, "", "{:.4f}"))]

RUN_METRICS: tuple[Metric, ...] = (
    *_refs(_au, "AU MAE", gt=True),
    *_refs(_raise, "raise progress", gt=True),
    *_refs(_lower, "lower progress", gt=True),
    Metric("au_rmse", "AU RMSE (judge)", LOWER, _AU, "{:.3f}", _EDIT, False, "au"),
    Metric("au_mae_critic", "AU MAE (critic)", LOWER, _AU, "{:.3f}", _EDIT, True, "au_critic"),
    *_refs(_mp, "AU MAE (MediaPipe)"),
    *_refs(_raise_mp, "raise progress (MediaPipe)"),
    *_refs(_lower_mp, "lower progress (MediaPipe)"),
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
    *_refs(_l1_raise, "L1 raise mask"),
    *_refs(_l1_unch, "L1 unchanged region"),
    *_parts,
    *[x for m in _box for x in (m, _floor(m, f"{m.label}, source"))],
)
METRICS = {m.key: m for m in RUN_METRICS}
# What ``dvc metrics show`` lists per variant (means over seeds, ``metrics/<variant>.json``);
# everything else stays in the non-metric ``eval/<variant>/seed<k>/metrics.json``.
HEADLINE = ("au_mae", "au_mae_neutral", "au_raise", "au_mae_mp", "au_mae_mp_neutral", "l1_raise", "l1_unchanged",
            "l1_unchanged_source", "fid")
MASK_TOL = 0.05  # [0,1] intensity: the raise mask's and the unchanged region's threshold
ASKED_STEP = 1.0  # AU intensity: an AU counts as asked to change when |target - source label| >= this
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
    """Columns of the architecture table, read from ``timing/timing.json`` (lower is better)."""
    return tuple([TimingMetric(f"ms_per_image_b{b}", f"ms/image, batch {b}", "{:.3f}") for b in batch_sizes]
                 + [TimingMetric("gflops_run", "GFLOPs/image, run size", "{:.3f}"),
                    TimingMetric("gflops_paper", "GFLOPs/image, paper size", "{:.2f}"),
                    TimingMetric("params_paper", "parameters (M), paper size", "{:.2f}")])
