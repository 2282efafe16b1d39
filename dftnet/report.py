"""The report stage: per-run metric files -> tables, and each claim of the paper -> a verdict.

Inputs are ``eval/<variant>/seed<k>/metrics.json`` (one per trained run) and, optionally, the
AU judge's own ``judge/metrics.json``. Outputs, each written atomically under ``out_dir``:

- ``reports/results.csv``: one row per run (variant, seed, every summary number, the run's
  own bootstrap CIs as ``<metric>_boot_lo/_hi``). Nulls are empty cells.
- ``reports/results_aggregate.csv``: tidy long format, one row per (variant, metric) with
  n_seeds, mean, sd and the 95% Student-t CI over seeds (empty for n = 1).
- ``reports/results_per_au.csv``: one row per (variant, seed, AU): the judge's MAE on the
  edit and on the unchanged source.
- ``reports/results.md``: the readable report. ``reports/claims.md``: the claims table.

Everything a table shows is declared once in :data:`COLUMNS`; adding a metric is one line.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
from dftnet.data.aus import AU_NAMES
from dftnet.errors import DataError
from dftnet.eval.stats import mean_ci_over_seeds


# ------------------------------------------------------------------ declarations
@dataclass(frozen=True)
class Column:
    key: str  # the summary key in metrics.json
    label: str  # header in the Markdown tables
    higher_is_better: bool | None  # None: context, not a score (e.g. the distance between people)
    fmt: str  # format of one number
    group: str  # Markdown tables are split by group to stay readable


COLUMNS: tuple[Column, ...] = (
    Column("au_mae", "AU MAE (judge)", False, "{:.3f}", "Expression edit"),
    Column("au_rmse", "AU RMSE (judge)", False, "{:.3f}", "Expression edit"),
    Column("au_mae_source", "AU MAE, unedited source", False, "{:.3f}", "Expression edit"),
    Column("au_mae_critic", "AU MAE (critic)", False, "{:.3f}", "Expression edit"),
    Column("fid", "FID", False, "{:.2f}", "Realism and identity"),
    Column("lpips", "LPIPS to source", False, "{:.3f}", "Realism and identity"),
    Column("lpips_gt", "LPIPS to GT", False, "{:.3f}", "Realism and identity"),
    Column("id_dist", "identity dist.", False, "{:.3f}", "Realism and identity"),
    Column("id_share_same", "same-person share", True, "{:.3f}", "Realism and identity"),
    Column("id_dist_other", "dist. between people", None, "{:.3f}", "Realism and identity"),
    Column("l1_gt", "L1 to GT", False, "{:.4f}", "Paired with ground truth"),
    Column("l1_gt_source", "L1 to GT, unedited source", None, "{:.4f}", "Paired with ground truth"),
    Column("psnr_gt", "PSNR to GT (dB)", True, "{:.2f}", "Paired with ground truth"),
    Column("psnr_gt_source", "PSNR, unedited source", None, "{:.2f}", "Paired with ground truth"),
    Column("ssim_gt", "SSIM to GT", True, "{:.4f}", "Paired with ground truth"),
    Column("ssim_gt_source", "SSIM, unedited source", None, "{:.4f}", "Paired with ground truth"),
    Column("l1_gt_eyes", "L1 eyes", False, "{:.4f}", "Paired, eye and mouth boxes"),
    Column("l1_gt_eyes_source", "L1 eyes, source", None, "{:.4f}", "Paired, eye and mouth boxes"),
    Column("ssim_gt_eyes", "SSIM eyes", True, "{:.4f}", "Paired, eye and mouth boxes"),
    Column("ssim_gt_eyes_source", "SSIM eyes, source", None, "{:.4f}", "Paired, eye and mouth boxes"),
    Column("l1_gt_mouth", "L1 mouth", False, "{:.4f}", "Paired, eye and mouth boxes"),
    Column("l1_gt_mouth_source", "L1 mouth, source", None, "{:.4f}", "Paired, eye and mouth boxes"),
    Column("ssim_gt_mouth", "SSIM mouth", True, "{:.4f}", "Paired, eye and mouth boxes"),
    Column("ssim_gt_mouth_source", "SSIM mouth, source", None, "{:.4f}", "Paired, eye and mouth boxes"),
    Column("ms_per_image_b1", "ms/image, batch 1", False, "{:.2f}", "Inference time"),
    Column("ms_per_image_b64", "ms/image, batch 64", False, "{:.3f}", "Inference time"),
)
BOOTSTRAP_CI_KEYS = ("au_mae_ci", "id_dist_ci")  # each run's own bootstrap CI over images
EYE_AUS = ("AU05", "AU07", "AU45")
MOUTH_AUS = ("AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26")
PER_AU_PREFIX = "au_mae_AU"  # metric names such as au_mae_AU45 read the judge's per-AU MAE
COLUMN_BY_KEY = {c.key: c for c in COLUMNS}
NAMES = {"dftnet": "DFT-Net", "ganimation": "GANimation"}
SUPPORTED, NOT_SUPPORTED, NOT_MEASURABLE = "supported", "not supported", "not measurable here"
WEAK_SEEDS = 3  # fewer seeds than this: the verdict is flagged as weak evidence


# --------------------------------------------------------------------------- runs
@dataclass
class Run:
    """One ``metrics.json``: a trained (variant, seed) evaluated once."""

    path: Path
    variant: str
    seed: int
    summary: dict
    per_au_mae: dict
    per_au_mae_source: dict
    protocol: dict

    def value(self, metric: str) -> float | None:
        if metric.startswith(PER_AU_PREFIX):
            return _num(self.per_au_mae.get(metric[len("au_mae_"):]))
        return _num(self.summary.get(metric))


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def load_run(path: Path) -> Run:
    """Read one metrics.json; a missing key stops with the file and the key."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read metrics JSON ({err})") from err
    for key in ("variant", "seed", "summary"):
        if key not in d:
            raise DataError(f"{path}: missing key {key!r}")
    if not isinstance(d["summary"], dict):
        raise DataError(f"{path}: 'summary' must be a mapping, got {type(d['summary']).__name__}")
    au = d.get("au") or {}
    return Run(path, str(d["variant"]), int(d["seed"]), d["summary"], _per_au_mae(au.get("edit")),
               _per_au_mae(au.get("source")), dict(d.get("protocol") or {}))


def _per_au_mae(block: dict | None) -> dict:
    """``{"AU01": mae, ...}`` from an evaluate_run AU block (``{"per_au": {"AU01": {"mae": ..}}}``)."""
    return {a: v.get("mae") for a, v in ((block or {}).get("per_au") or {}).items()}


class Runs:
    """All runs, indexed by variant and seed; what the claim functions read."""

    def __init__(self, runs: Iterable[Run], first: Sequence[str] = ("dftnet", "ganimation")):
        # Tables list the reference and the baseline first, then the ablations by name.
        rank = {v: i for i, v in enumerate(first)}
        self.runs = sorted(runs, key=lambda r: (rank.get(r.variant, len(rank)), r.variant, r.seed))
        seen: dict[tuple[str, int], Path] = {}
        for r in self.runs:
            if (r.variant, r.seed) in seen:
                raise DataError(f"{r.path}: variant {r.variant!r} seed {r.seed} also in {seen[(r.variant, r.seed)]}")
            seen[(r.variant, r.seed)] = r.path

    def variants(self) -> list[str]:
        return list(dict.fromkeys(r.variant for r in self.runs))

    def seeds(self, variant: str | None = None) -> list[int]:
        return sorted({r.seed for r in self.runs if variant is None or r.variant == variant})

    def by_seed(self, variant: str, metric: str) -> dict[int, float | None]:
        return {r.seed: r.value(metric) for r in self.runs if r.variant == variant}

    def reason(self, metric: str) -> str:
        """Why a metric is null, from the protocols' ``unavailable`` maps ('' if none says)."""
        for r in self.runs:
            unavailable = r.protocol.get("unavailable") or {}
            # "lpips" explains "lpips_gt"; "id" or "identity" explains "id_dist".
            keys = sorted((k for k in unavailable if metric == k or metric.startswith(f"{k}_")
                           or (k == "identity" and metric.startswith("id_"))), key=len, reverse=True)
            if keys:
                return str(unavailable[keys[0]])
        return ""


# --------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Aggregate:
    n: int
    mean: float | None
    sd: float | None
    ci_lo: float | None
    ci_hi: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.ci_hi is None else (self.ci_hi - self.ci_lo) / 2


def mean_ci(values: Sequence[float | None], level: float = 0.95) -> Aggregate:
    """Mean and Student-t CI over seeds: mean +- t_{(1+level)/2, n-1} * sd / sqrt(n); nulls dropped."""
    a = mean_ci_over_seeds(values, level)
    lo, hi = a["ci"] or (None, None)
    return Aggregate(a["n"], a["mean"], a["std"], lo, hi)


# --------------------------------------------------------------------- the tables
def _metric_keys(runs: Runs) -> list[str]:
    """Declared columns first, then any other summary key a run carries (nothing is dropped)."""
    keys = [c.key for c in COLUMNS]
    for r in runs.runs:
        keys += [k for k, v in r.summary.items() if k not in keys and k not in BOOTSTRAP_CI_KEYS
                 and not isinstance(v, (list, dict))]
    return keys


def per_seed_frame(runs: Runs) -> pd.DataFrame:
    rows = []
    for r in runs.runs:
        row = {"variant": r.variant, "seed": r.seed}
        row.update({k: r.value(k) for k in _metric_keys(runs)})
        for key in BOOTSTRAP_CI_KEYS:
            ci = r.summary.get(key) or [None, None]
            base = key[: -len("_ci")]
            row[f"{base}_boot_lo"], row[f"{base}_boot_hi"] = _num(ci[0]), _num(ci[1])
        rows.append(row)
    return pd.DataFrame(rows)


def aggregate_frame(runs: Runs) -> pd.DataFrame:
    metrics = _metric_keys(runs) + [f"{PER_AU_PREFIX}{a[2:]}" for a in AU_NAMES]
    rows = []
    for v in runs.variants():
        for m in metrics:
            a = mean_ci(list(runs.by_seed(v, m).values()))
            rows.append({"variant": v, "metric": m, "n_seeds": a.n, "mean": a.mean, "sd": a.sd,
                         "ci_lo": a.ci_lo, "ci_hi": a.ci_hi, "ci_half": a.half_width})
    return pd.DataFrame(rows)


def per_au_frame(runs: Runs) -> pd.DataFrame:
    return pd.DataFrame([{"variant": r.variant, "seed": r.seed, "au": a,
                          "mae": _num(r.per_au_mae.get(a)), "mae_source": _num(r.per_au_mae_source.get(a))}
                         for r in runs.runs for a in AU_NAMES])


def _fmt(v: float | None, fmt: str) -> str:
    return "" if v is None else fmt.format(v)


def null_cell(reason: str) -> str:
    return "n/a (weights not found)" if "weight" in reason.lower() else "n/a"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _header(c: Column) -> str:
    arrow = {True: " ↑", False: " ↓", None: ""}[c.higher_is_better]
    return c.label + arrow


def _name(variant: str) -> str:
    return NAMES.get(variant, variant)


def aggregate_tables(runs: Runs) -> str:
    """Markdown: per group of columns, one row per variant, ``mean ± half-width`` cells."""
    out = []
    for group in dict.fromkeys(c.group for c in COLUMNS):
        cols = [c for c in COLUMNS if c.group == group]
        rows = []
        for v in runs.variants():
            cells = [_name(v), str(len(runs.seeds(v)))]
            for c in cols:
                a = mean_ci(list(runs.by_seed(v, c.key).values()))
                if a.mean is None:
                    cells.append(null_cell(runs.reason(c.key)))
                elif a.half_width is None:
                    cells.append(c.fmt.format(a.mean))
                else:
                    cells.append(f"{c.fmt.format(a.mean)} ± {c.fmt.format(a.half_width)}")
            rows.append(cells)
        out.append(f"**{group}**\n\n" + _md_table(["variant", "seeds"] + [_header(c) for c in cols], rows))
    return "\n\n".join(out)


def per_seed_tables(runs: Runs) -> str:
    out = []
    for group in dict.fromkeys(c.group for c in COLUMNS):
        cols = [c for c in COLUMNS if c.group == group]
        rows = [[_name(r.variant), str(r.seed)]
                + [null_cell(runs.reason(c.key)) if r.value(c.key) is None else c.fmt.format(r.value(c.key))
                   for c in cols] for r in runs.runs]
        out.append(f"**{group}**\n\n" + _md_table(["variant", "seed"] + [_header(c) for c in cols], rows))
    return "\n\n".join(out)


def per_au_table(runs: Runs, aus: Sequence[str] = EYE_AUS + MOUTH_AUS) -> str:
    """The judge's MAE per AU (seed mean), eyes then mouth; a last row for the unedited source."""
    def mean(xs):
        return mean_ci([_num(x) for x in xs]).mean
    rows = [[_name(v)] + [_fmt(mean([r.per_au_mae.get(a) for r in runs.runs if r.variant == v]), "{:.3f}")
                          for a in aus] for v in runs.variants()]
    rows.append(["*source unchanged*"] + [_fmt(mean([r.per_au_mae_source.get(a) for r in runs.runs]), "{:.3f}")
                                          for a in aus])
    header = ["variant"] + [f"{a} (eyes)" if a in EYE_AUS else f"{a} (mouth)" for a in aus]
    return _md_table(header, rows)


def judge_section(judge: dict | None) -> str:
    if not judge:
        return "No judge report was given: the judge's own accuracy is unknown, read AU errors with care."
    splits = [k for k in ("heldout", "test") if judge.get(k)]
    header, rows = ["AU"], [[a] for a in AU_NAMES]
    for split in splits:
        s = judge[split]
        header += [f"{split} MAE", f"{split} r", f"{split} label sd"]
        for row, a in zip(rows, AU_NAMES):
            per_au = (s.get("per_au") or {}).get(a) or {}
            row += [_fmt(_num(per_au.get(k)), f) for k, f in
                    (("mae", "{:.3f}"), ("pearson_r", "{:.2f}"), ("label_std", "{:.3f}"))]
    means = "; ".join(f"{k}: {_fmt(_num(judge[k].get('mean_mae')), '{:.3f}') or 'n/a'}" for k in splits)
    return ("An AU error is only as good as the judge that measures it: an AU whose judge MAE is close "
            "to its label sd (the error of always guessing the mean), or whose r is low, is not measured "
            f"reliably. Mean MAE (AU intensity, 0-5) {means}.\n\n" + _md_table(header, rows))


def _unique(values: Iterable) -> str:
    vals = list(dict.fromkeys(json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v)
                              for v in values if v is not None))
    return "; ".join(vals) if vals else "not recorded"


def n_images(runs: Runs) -> int | None:
    ns = [r.protocol.get("n_images") for r in runs.runs if r.protocol.get("n_images") is not None]
    return min(int(n) for n in ns) if ns else None


def protocol_section(runs: Runs) -> str:
    unavailable: dict[str, str] = {}
    for r in runs.runs:
        unavailable.update({k: str(v) for k, v in (r.protocol.get("unavailable") or {}).items()})
    lines = [f"- N (evaluated edits per run): {_unique(r.protocol.get('n_images') for r in runs.runs)}",
             f"- seeds: " + "; ".join(f"{_name(v)} {runs.seeds(v)}" for v in runs.variants()),
             f"- device: {_unique(r.protocol.get('device') for r in runs.runs)}",
             f"- library versions: {_unique(r.protocol.get('versions') for r in runs.runs)}"]
    other = {k: v for k, v in runs.runs[0].protocol.items() if k not in ("n_images", "device", "versions", "unavailable")}
    lines += [f"- {k}: {_unique(r.protocol.get(k) for r in runs.runs)}" for k in other]
    lines.append("- unavailable metrics: " + ("none" if not unavailable else ""))
    lines += [f"  - `{k}`: {v}" for k, v in sorted(unavailable.items())]
    lines.append("- metric files: " + ", ".join(f"`{r.path}`" for r in runs.runs))
    return "\n".join(lines)


def how_to_read(runs: Runs) -> str:
    n = n_images(runs)
    fid_note = ("FID is computed on N = {n} images here; below 2048 images it is biased upward and "
                "noisy, so compare it only within this table, never with published numbers.").format(n=n if n else "?")
    return (
        "Lower is better (↓) for `au_mae` (the AU judge's error between the target AUs and the AUs it "
        "reads on the edit), FID, LPIPS, identity distance and L1; higher is better (↑) for SSIM, PSNR "
        "and the same-person share. `au_mae_source` is the error of the *unedited* source image "
        "against the target AUs: the \"changed nothing\" floor that every model must beat; a model "
        "near it did not edit the expression. `au_mae_critic` reads the AUs with the model's own "
        "critic (the quantity it was trained on), so it flatters the model; trust the judge. "
        "Paired metrics (`*_gt`) need ground truth and exist only on synthetic data; each has its "
        "\"changed nothing\" value beside it (`*_source`: the unedited source against the true target), "
        "so a model that barely touches the image cannot look good on them. "
        "Cells are mean ± 95% CI half-width over training seeds (Student t); with one seed only the "
        f"mean is shown. {fid_note}")


# ------------------------------------------------------------------------ claims
@dataclass(frozen=True)
class Comparison:
    """The reference against another variant on one metric, paired by seed."""

    metric: str
    reference: str
    other: str
    status: str
    ref_mean: float | None = None
    other_mean: float | None = None
    seeds: tuple[int, ...] = ()
    wins: int = 0  # seeds in which the reference is strictly better
    higher_is_better: bool = False
    reason: str = ""  # why not measurable, or what was dropped

    def describe(self) -> str:
        if self.status == NOT_MEASURABLE:
            return f"`{self.metric}`: not measurable ({self.reason})"
        fmt = COLUMN_BY_KEY[self.metric].fmt if self.metric in COLUMN_BY_KEY else "{:.3f}"
        better = "higher" if self.higher_is_better else "lower"
        text = (f"`{self.metric}` ({better} is better): {_name(self.reference)} {fmt.format(self.ref_mean)} vs "
                f"{_name(self.other)} {fmt.format(self.other_mean)}; {_name(self.reference)} better in "
                f"{self.wins}/{len(self.seeds)} seeds")
        return text + (f" ({self.reason})" if self.reason else "")


def compare(metric: str, ref: dict[int, float | None], other: dict[int, float | None], higher_is_better: bool,
            reference: str, other_name: str, null_reason: str = "") -> Comparison:
    """Supported when the reference is better on the mean over paired seeds AND in every paired seed."""
    base = dict(metric=metric, reference=reference, other=other_name, higher_is_better=higher_is_better)
    for name, vals in ((reference, ref), (other_name, other)):
        if not vals:
            return Comparison(status=NOT_MEASURABLE, reason=f"no metric files for variant `{name}`", **base)
    common = sorted(set(ref) & set(other))
    if not common:
        return Comparison(status=NOT_MEASURABLE, reason="the two variants share no seed", **base)
    seeds = [s for s in common if ref[s] is not None and other[s] is not None]
    if not seeds:
        return Comparison(status=NOT_MEASURABLE, reason=f"metric is null: {null_reason or 'not computed'}", **base)
    notes = []
    if len(seeds) < len(common):
        notes.append(f"seeds {[s for s in common if s not in seeds]} dropped: null")
    if set(ref) != set(other):
        notes.append(f"only seeds in both variants compared: {common}")
    sign = 1.0 if higher_is_better else -1.0
    wins = sum(sign * (ref[s] - other[s]) > 0 for s in seeds)
    ref_mean = sum(ref[s] for s in seeds) / len(seeds)
    other_mean = sum(other[s] for s in seeds) / len(seeds)
    ok = sign * (ref_mean - other_mean) > 0 and wins == len(seeds)
    return Comparison(status=SUPPORTED if ok else NOT_SUPPORTED, ref_mean=ref_mean, other_mean=other_mean,
                      seeds=tuple(seeds), wins=wins, reason="; ".join(notes), **base)


# Metrics of the architecture, not of what a model learned: no learning gate applies to them.
UNGATED_METRICS = ("ms_per_image_b1", "ms_per_image_b64")


def not_learned(runs: Runs, variant: str) -> str | None:
    """Why ``variant`` cannot carry a verdict on edit quality, or None: in some seed the judge
    read its edits no closer to the target AUs than the unedited sources (``au_mae`` not below
    ``au_mae_source``), i.e. that model did not learn to edit, and comparing it measures noise."""
    edit, floor = runs.by_seed(variant, "au_mae"), runs.by_seed(variant, "au_mae_source")
    bad = {s: (edit[s], floor.get(s)) for s in edit if edit[s] is None or floor.get(s) is None or edit[s] >= floor[s]}
    if not bad:
        return None
    s, (e, f) = sorted(bad.items())[0]
    reading = f"{e:.3f} vs its floor {f:.3f}" if e is not None and f is not None else "no judge reading"
    return f"`{variant}` did not beat the unedited-source floor in seed {s} (judge AU MAE {reading}): it did not learn to edit"


def compare_runs(runs: Runs, metric: str, reference: str, other: str, higher_is_better: bool | None = None) -> Comparison:
    """:func:`compare` of two variants' per-seed values; not measurable when either variant did
    not learn (:func:`not_learned`), except for the architecture's own speed."""
    if higher_is_better is None:
        higher_is_better = bool(COLUMN_BY_KEY[metric].higher_is_better) if metric in COLUMN_BY_KEY else False
    if metric not in UNGATED_METRICS:
        for v in (reference, other):
            why = not_learned(runs, v) if runs.seeds(v) else None
            if why:
                return Comparison(metric=metric, reference=reference, other=other, status=NOT_MEASURABLE,
                                  higher_is_better=higher_is_better, reason=why)
    return compare(metric, runs.by_seed(reference, metric), runs.by_seed(other, metric), higher_is_better,
                   reference, other, runs.reason(metric))


def combine(comparisons: Sequence[Comparison]) -> tuple[str, str]:
    """One verdict from several metrics: every measurable one must support; none measurable -> not measurable."""
    measured = [c for c in comparisons if c.status != NOT_MEASURABLE]
    if not measured:
        return NOT_MEASURABLE, "; ".join(f"`{c.metric}`: {c.reason}" for c in comparisons)
    failed = [c for c in measured if c.status == NOT_SUPPORTED]
    unmeasured = [c.metric for c in comparisons if c.status == NOT_MEASURABLE]
    tail = f" (not measurable: {', '.join(unmeasured)})" if unmeasured else ""
    if failed:
        return NOT_SUPPORTED, "not better on " + ", ".join(f"`{c.metric}`" for c in failed) + tail
    return SUPPORTED, "better on mean and every seed for " + ", ".join(f"`{c.metric}`" for c in measured) + tail


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    verdict: str
    why: str
    evidence: tuple[str, ...]
    n_seeds: int = 0  # paired seeds behind the verdict (0: not measured)

    @property
    def weak(self) -> bool:
        return self.verdict != NOT_MEASURABLE and self.n_seeds < WEAK_SEEDS


def _claim(id: str, text: str, comps: Sequence[Comparison], extra: Sequence[str] = ()) -> Claim:
    verdict, why = combine(comps)
    n = min((len(c.seeds) for c in comps if c.status != NOT_MEASURABLE), default=0)
    return Claim(id, text, verdict, why, tuple(c.describe() for c in comps) + tuple(extra), n)


def claim_eyelids(runs: Runs, reference: str = "dftnet", baseline: str = "ganimation") -> Claim:
    """(1) Sec. 4 / Fig. 3: DFT-Net synthesises eyelids (AU45) better than GANimation."""
    comps = [compare_runs(runs, m, reference, baseline) for m in ("l1_gt_eyes", "ssim_gt_eyes")]
    comps.append(compare_runs(runs, f"{PER_AU_PREFIX}45", reference, baseline, higher_is_better=False))
    return _claim("1", f"{_name(reference)} beats {_name(baseline)} at eyelid synthesis (AU45)", comps)


def claim_artifacts(runs: Runs, reference: str = "dftnet", baseline: str = "ganimation") -> Claim:
    """(2) Fewer artifacts. The verdict rests on FID alone; paired metrics are a labelled proxy only."""
    fid = compare_runs(runs, "fid", reference, baseline)
    proxies = [compare_runs(runs, m, reference, baseline) for m in ("ssim_gt", "l1_gt", "lpips_gt")]
    proxy_verdict, proxy_why = combine(proxies)
    extra = [f"proxy (not artifacts as such): {c.describe()}" for c in proxies]
    extra.append(f"proxy verdict: {proxy_verdict} ({proxy_why})")
    claim = _claim("2", f"{_name(reference)} shows fewer artifacts than {_name(baseline)}", [fid], extra)
    if fid.status == NOT_MEASURABLE:
        claim = Claim(claim.id, claim.text, NOT_MEASURABLE,
                      f"FID unavailable ({fid.reason}); paired proxy says: {proxy_verdict}", claim.evidence, 0)
    return claim


def claim_speed(runs: Runs, reference: str = "dftnet", baseline: str = "ganimation") -> Claim:
    """(3) DFT-Net is faster at inference: ms per image at batch 1 and batch 64."""
    comps = [compare_runs(runs, m, reference, baseline) for m in ("ms_per_image_b1", "ms_per_image_b64")]
    extra = [f"speed-up at {c.metric[-3:].replace('_', '')}: {c.other_mean / c.ref_mean:.2f}x "
             f"({_name(baseline)} ms / {_name(reference)} ms)"
             for c in comps if c.status != NOT_MEASURABLE and c.ref_mean]
    return _claim("3", f"{_name(reference)} is faster at inference than {_name(baseline)}", comps, extra)


ABLATION_METRICS = ("au_mae", "l1_gt")


def claim_ablations(runs: Runs, reference: str = "dftnet", baseline: str = "ganimation") -> list[Claim]:
    """(4) Each ablation hurts: the full model beats every other variant on au_mae and l1_gt.

    Returns the overall claim first, then one claim per ablation found in the metric files.
    """
    ablations = [v for v in runs.variants() if v not in (reference, baseline)]
    per = [_claim(f"4.{i + 1}", f"ablation `{v}` is worse than {_name(reference)}",
                  [compare_runs(runs, m, reference, v) for m in ABLATION_METRICS])
           for i, v in enumerate(ablations)]
    if not per:
        return [Claim("4", "each ablation hurts", NOT_MEASURABLE, "no ablation variant in the metric files", ())]
    verdicts = {c.verdict for c in per}
    if verdicts == {NOT_MEASURABLE}:
        verdict = NOT_MEASURABLE
    elif NOT_SUPPORTED in verdicts:
        verdict = NOT_SUPPORTED
    else:
        verdict = SUPPORTED
    why = "; ".join(f"`{v}`: {c.verdict}" for v, c in zip(ablations, per))
    n = min((c.n_seeds for c in per if c.verdict != NOT_MEASURABLE), default=0)
    overall = Claim("4", f"each ablation hurts ({', '.join(ablations)})", verdict, why, (), n)
    return [overall] + per


def all_claims(runs: Runs, reference: str = "dftnet", baseline: str = "ganimation") -> list[Claim]:
    return [claim_eyelids(runs, reference, baseline), claim_artifacts(runs, reference, baseline),
            claim_speed(runs, reference, baseline)] + claim_ablations(runs, reference, baseline)


RULE = (
    "**Rule.** For each metric the reference is compared with the other variant *paired by seed*: "
    "the claim is **supported** on that metric when the reference is better on the mean over the "
    "paired seeds **and** in every single seed (ties count as not better). A claim resting on several "
    "metrics is supported when every measurable metric supports it, **not supported** when any "
    "measurable metric does not (the numbers are listed), and **not measurable here** when no metric "
    "can be computed (null metric, e.g. missing weights or no ground truth, or a missing variant), or "
    "when a compared model did not learn: in some seed the judge read its edits no closer to the target "
    "AUs than the unedited sources, so no verdict on edit quality may rest on it. "
    "Claim 2 (artifacts) is judged on FID only, the paper's measure; when FID is unavailable the "
    "verdict is *not measurable here*, and paired whole-image SSIM / L1 / LPIPS against ground truth "
    "are reported as a labelled proxy that does not change the verdict. Claim 4 holds when every "
    "ablation is worse than the full model on `au_mae` and `l1_gt`. "
    f"With fewer than {WEAK_SEEDS} seeds a verdict is marked *weak*: one seed more can flip it.")


def claims_table(claims: Sequence[Claim]) -> str:
    rows = []
    for c in claims:
        verdict = f"**{c.verdict}**" + (f" (weak: n = {c.n_seeds} seeds)" if c.weak else "")
        evidence = "<br>".join(c.evidence) or "see the rows below"
        rows.append([c.id, c.text, evidence, verdict, c.why])
    return _md_table(["#", "claim", "measured evidence", "verdict", "why"], rows)


def claims_markdown(claims: Sequence[Claim], runs: Runs) -> str:
    seeds = runs.seeds()
    weak = (f"\n\n> **Weak evidence:** only {len(seeds)} seed(s) ({seeds}); fewer than {WEAK_SEEDS} seeds "
            "cannot separate a real difference from training noise.") if len(seeds) < WEAK_SEEDS else ""
    return f"{RULE}{weak}\n\n{claims_table(claims)}\n"


# ------------------------------------------------------------------------ writing
def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def build_report(metric_paths: list[Path], judge_metrics: Path | None, out_dir: Path,
                 baseline: str = "ganimation", reference: str = "dftnet") -> None:
    """Read every run's metrics.json (and the judge's), write the CSVs, results.md and claims.md."""
    if not metric_paths:
        raise DataError("report: no metrics.json given")
    runs = Runs((load_run(Path(p)) for p in metric_paths), first=(reference, baseline))
    judge = None
    if judge_metrics is not None:
        try:
            judge = json.loads(Path(judge_metrics).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"{judge_metrics}: cannot read the judge's metrics JSON ({err})") from err
    claims = all_claims(runs, reference, baseline)
    # Render everything before writing anything, so a failure leaves no partial report.
    csvs = {"results.csv": per_seed_frame(runs), "results_aggregate.csv": aggregate_frame(runs),
            "results_per_au.csv": per_au_frame(runs)}
    texts = {name: df.to_csv(index=False, na_rep="", float_format="%.6g") for name, df in csvs.items()}
    texts["claims.md"] = "# The paper's claims, checked\n\n" + claims_markdown(claims, runs)
    texts["results.md"] = "\n\n".join([
        "# DFT-Net vs GANimation: results",
        f"{len(runs.runs)} runs: " + ", ".join(f"{_name(v)} ({len(runs.seeds(v))} seeds)" for v in runs.variants())
        + ". Numbers: `reports/results.csv` (per run), `reports/results_aggregate.csv` (over seeds), "
          "`reports/results_per_au.csv`.",
        "## Claims of the paper\n\n" + claims_markdown(claims, runs),
        "## How to read this\n\n" + how_to_read(runs),
        "## Over seeds (mean ± 95% CI half-width)\n\n" + aggregate_tables(runs),
        "## Per seed\n\n" + per_seed_tables(runs),
        "## AU error per AU: eyes and mouth (judge MAE, mean over seeds)\n\n" + per_au_table(runs),
        "## The AU judge's own quality\n\n" + judge_section(judge),
        "## Protocol\n\n" + protocol_section(runs),
    ]) + "\n"
    reports = Path(out_dir)
    for name, text in texts.items():
        _write_atomic(reports / name, text)
