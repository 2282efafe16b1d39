"""The report stage's tables: per-run metric files -> CSVs and ``results.md`` (the claims and
their verdicts: :mod:`dftnet.reporting.claims`).

Inputs are ``eval/<variant>/seed<k>/metrics.json`` (one per trained run) and, optionally, the
AU judge's own metrics. The timing (``timing/timing.json``: inference time, FLOPs, claim 3) is
read by the clock, so it has a report of its own, :func:`build_timing_report`, written by the
timing stage: nothing the report stage writes differs between two runs of the same commit.
Outputs, each written atomically under ``out_dir``:

- ``reports/results.csv``: one row per run (variant, seed, every metric of the schema, each
  run's own bootstrap CI over its test pairs as ``<metric>_boot_lo/_hi``). Nulls are empty cells.
- ``reports/results_aggregate.csv``: tidy long format, one row per (variant, metric) with
  n_seeds, mean, sd and the 95% Student-t CI over seeds (empty for n = 1).
- ``reports/results_per_au.csv``: one row per (variant, seed, AU): the judge's MAE on the
  edit and on the unchanged source, and the raise/lower progress of that AU (where asked) for
  the edit, the ground truth and the neutral face, per AU reader.
- ``reports/results.md``: the readable report. ``reports/claims.md``: the claims table.
- (timing stage) ``reports/timing.md``: claim 3 and the timing table; ``reports/results_timing.csv``:
  one row per variant: ms per image, FLOPs, parameters.

Every column is a metric of :mod:`dftnet.eval.schema`; adding a metric there adds it here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, cast

import pandas as pd

from dftnet.runtime import atomic
from dftnet.reporting.claims import (Bootstrap, all_claims, claims_markdown, remedy_claims, speed_claims,
                                     speed_markdown)
from dftnet.data.aus import AU_NAMES
from dftnet.runtime.errors import DataError
from dftnet.eval.schema import IDENTITY_KEYS, N_KEY, PROTOCOL_FIELDS, RUN_METRICS, Metric, timing_metrics
from dftnet.eval.stats import mean_ci_over_seeds
from dftnet.reporting.results import Runs, Timing, display_name as _name, load_run, load_timing, md_table, num as _num

EYE_AUS = ("AU05", "AU07", "AU45")
MOUTH_AUS = ("AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26")
PER_AU_PREFIX = "au_mae_AU"  # aggregate rows such as au_mae_AU45 read the judge's per-AU MAE
SAME_PERSON_THRESHOLD_DEFAULT = 0.6  # dlib's, where a run does not record its own


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
        if self.ci_hi is None:
            return None
        assert self.ci_lo is not None  # mean_ci sets both ends of the interval or neither
        return (self.ci_hi - self.ci_lo) / 2


def mean_ci(values: Sequence[float | None], level: float = 0.95) -> Aggregate:
    """Mean and Student-t CI over seeds: mean +- t_{(1+level)/2, n-1} * sd / sqrt(n); nulls dropped."""
    a = mean_ci_over_seeds(values, level)
    lo, hi = a["ci"] or (None, None)
    return Aggregate(a["n"], a["mean"], a["std"], lo, hi)


# --------------------------------------------------------------------- the tables
def per_seed_frame(runs: Runs) -> pd.DataFrame:
    rows = []
    for r in runs.runs:
        row = {"variant": r.variant, "seed": r.seed}
        row.update({m.key: r.value(m.key) for m in RUN_METRICS})
        for m in RUN_METRICS:
            lo, hi = r.ci.get(m.key) or (None, None)
            if m.per_pair:
                row[f"{m.key}_boot_lo"], row[f"{m.key}_boot_hi"] = _num(lo), _num(hi)
        rows.append(row)
    return pd.DataFrame(rows)


def aggregate_frame(runs: Runs) -> pd.DataFrame:
    rows = []
    for v in runs.variants():
        values = {m.key: list(runs.by_seed(v, m.key).values()) for m in RUN_METRICS}
        values.update({f"{PER_AU_PREFIX}{a[2:]}": [_num(r.per_au_mae.get(a)) for r in runs.of(v).values()]
                       for a in AU_NAMES if f"{PER_AU_PREFIX}{a[2:]}" not in values})
        for key, vals in values.items():
            a = mean_ci(vals)
            rows.append({"variant": v, "metric": key, "n_seeds": a.n, "mean": a.mean, "sd": a.sd,
                         "ci_lo": a.ci_lo, "ci_hi": a.ci_hi, "ci_half": a.half_width})
    return pd.DataFrame(rows)


def timing_frame(timing: Timing | None, variants: Sequence[str]) -> pd.DataFrame:
    if timing is None:
        return pd.DataFrame(columns=["variant"])
    cols = timing_metrics(timing.batch_sizes())
    return pd.DataFrame([{"variant": v, **{c.key: timing.value(v, c.key) for c in cols}}
                         for v in variants if v in timing.models])


PROGRESS_COLUMNS = tuple((reader, ref, way) for reader in ("judge", "annotator") for way in ("raise", "lower")
                         for ref in ("edit", "gt", "neutral"))


def _progress_column(reader: str, ref: str, way: str) -> str:
    return f"{way}{'' if reader == 'judge' else '_mp'}{'' if ref == 'edit' else '_' + ref}"


def per_au_frame(runs: Runs) -> pd.DataFrame:
    return pd.DataFrame([{"variant": r.variant, "seed": r.seed, "au": a,
                          "mae": _num(r.per_au_mae.get(a)), "mae_source": _num(r.per_au_mae_source.get(a)),
                          **{_progress_column(*c): r.progress_per_au(*c).get(a) for c in PROGRESS_COLUMNS}}
                         for r in runs.runs for a in AU_NAMES])


def _fmt(v: float | None, fmt: str) -> str:
    return "" if v is None else fmt.format(v)


def null_cell(reason: str) -> str:
    return "n/a (weights not found)" if "weight" in reason.lower() else "n/a"


def _header(c: Metric) -> str:
    arrow = {True: " ↑", False: " ↓", None: ""}[c.higher_is_better]
    return c.label + arrow


def identity_caveat(runs: Runs) -> str:
    """A warning where dlib puts different people closer than its own same-person threshold:
    then identity distances cannot tell a changed identity from an unchanged one."""
    others = cast("list[float]", [r.value("id_dist_other") for r in runs.runs if r.value("id_dist_other") is not None])
    if not others:
        return ""
    thr = next((float(t) for r in runs.runs if (t := ((r.identity.get("protocol") or {}).get("same_person_threshold")))
                is not None), SAME_PERSON_THRESHOLD_DEFAULT)
    mean_other = sum(others) / len(others)
    if mean_other >= thr:
        return ""
    return (f"> **Identity metrics are not discriminative here:** dlib puts *different* people {mean_other:.2f} apart "
            f"on these faces, below its own same-person threshold {thr}, so `id_dist` and the same-person share "
            "cannot tell a changed identity from an unchanged one. Read them as context, not as evidence.")


def aggregate_tables(runs: Runs) -> str:
    """Markdown: per group of columns, one row per variant, ``mean ± half-width`` cells."""
    out, caveat = [], identity_caveat(runs)
    for group in dict.fromkeys(c.group for c in RUN_METRICS):
        cols = [c for c in RUN_METRICS if c.group == group]
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
        out.append(f"**{group}**\n\n" + md_table(["variant", "seeds"] + [_header(c) for c in cols], rows))
        if caveat and any(c.key in IDENTITY_KEYS for c in cols):
            out.append(caveat)
    return "\n\n".join(out)


def per_seed_tables(runs: Runs) -> str:
    out = []
    for group in dict.fromkeys(c.group for c in RUN_METRICS):
        cols = [c for c in RUN_METRICS if c.group == group]
        rows = [[_name(r.variant), str(r.seed)]
                + [null_cell(runs.reason(c.key)) if r.value(c.key) is None else c.fmt.format(r.value(c.key))
                   for c in cols] for r in runs.runs]
        out.append(f"**{group}**\n\n" + md_table(["variant", "seed"] + [_header(c) for c in cols], rows))
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
    return md_table(header, rows)


def judge_section(judge: dict | None) -> str:
    if not judge:
        return "No judge report was given: the judge's own accuracy is unknown, read AU errors with care."
    splits = [k for k in ("heldout", "test") if judge.get(k)]
    header, rows = ["AU"], [[a] for a in AU_NAMES]
    for split in splits:
        s = judge[split]
        header += [f"{split} MAE", f"{split} median baseline", f"{split} r", f"{split} label sd"]
        for row, a in zip(rows, AU_NAMES):
            per_au = (s.get("per_au") or {}).get(a) or {}
            row += [_fmt(_num(per_au.get(k)), f) for k, f in
                    (("mae", "{:.3f}"), ("mae_predict_median", "{:.3f}"), ("pearson_r", "{:.2f}"),
                     ("label_std", "{:.3f}"))]
    means = "; ".join(f"{k}: {_fmt(_num(judge[k].get('mean_mae')), '{:.3f}') or 'n/a'} (median baseline "
                      f"{_fmt(_num(judge[k].get('mean_mae_predict_median')), '{:.3f}') or 'n/a'})" for k in splits)
    fit = f"{judge.get('n_fit')} images of people no GAN sees" if judge.get("n_fit") else "its own split"
    return ("An AU error is only as good as the judge that measures it. The judge fits on "
            f"{fit}; an AU whose judge MAE is close to its median baseline (the MAE of always guessing the "
            "training labels' median, the best constant), or whose r is low, is not measured reliably. "
            f"Mean MAE (AU intensity, 0-5) {means}.\n\n" + md_table(header, rows))


def n_pairs(runs: Runs) -> int | None:
    ns = [int(n) for n in runs.protocol_values(N_KEY)]
    return min(ns) if ns else None


def timing_table(timing: Timing | None, variants: Sequence[str]) -> str:
    """One row per variant: the architecture's inference time (median, IQR) and FLOPs."""
    if timing is None:
        return "No timing (timing/timing.json) was given."
    cols = timing_metrics(timing.batch_sizes())
    rows = []
    for v in variants:
        if v not in timing.models:  # e.g. a variant added after the timing stage ran
            rows.append([_name(v), f"n/a: not timed ({timing.path} has no {v})"] + ["n/a"] * (len(cols) - 1))
            continue
        cells = [_name(v)]
        for c in cols:
            val = timing.value(v, c.key)
            cell = "n/a" if val is None else c.fmt.format(val)
            if c.key.startswith("ms_per_image_b") and val is not None:
                b = timing.models[v][f"b{c.key[len('ms_per_image_b'):]}"]
                cell += f" (IQR {b['ms_per_image_iqr']:.3f})"
            cells.append(cell)
        rows.append(cells)
    env, prot = timing.environment, timing.protocol
    flops: dict = next(iter(timing.flops.values()), {})
    sizes = "; ".join(f"{k}: {f.get('image_size')} px, {f.get('base_channels')} channels, {f.get('n_res_blocks')} res. blocks"
                      for k, f in flops.items())
    return (f"Measured once per variant (an architecture property, not a seed's): {prot.get('runs')} timed passes "
            f"after {prot.get('warmup')} warm-up passes, generators interleaved pass by pass, "
            f"{prot.get('mode')}, on {env.get('device_name')} ({env.get('threads')} threads). Median ms per image "
            f"(IQR). FLOPs: torch's FlopCounterMode, one image, 2 per multiply-add ({sizes}).\n\n"
            + md_table(["variant"] + [c.label + " ↓" if c.key.startswith(("ms_", "gflops")) else c.label for c in cols], rows))


def protocol_section(runs: Runs) -> str:
    unavailable: dict[str, str] = {}
    for r in runs.runs:
        unavailable.update({k: str(v) for k, v in (r.protocol.get("unavailable") or {}).items()})
    lines = ["- seeds: " + "; ".join(f"{_name(v)} {runs.seeds(v)}" for v in runs.variants())]
    for key, label in PROTOCOL_FIELDS:
        vals = runs.protocol_values(key)
        text = "; ".join(json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v) for v in vals)
        lines.append(f"- {label} (`{key}`): {text or 'not recorded by these runs'}")
    lines.append("- unavailable metrics: " + ("none" if not unavailable else ""))
    lines += [f"  - `{k}`: {v}" for k, v in sorted(unavailable.items())]
    lines.append("- metric files: " + ", ".join(f"`{r.path}`" for r in runs.runs))
    return "\n".join(lines)


def how_to_read(runs: Runs) -> str:
    n = n_pairs(runs)
    fid_note = (f"FID is computed on N = {n} edits here; below 2048 images it is biased upward and noisy, so "
                "compare it only within this table, never with published numbers.")
    return (
        "Lower is better (↓) for `au_mae` (the AU judge's error between the target AUs and the AUs it "
        "reads on the edit), FID, LPIPS, identity distance and L1; higher is better (↑) for SSIM, PSNR "
        "and the same-person share. Every AU error has two floors beside it: `au_mae_source`, the error of "
        "the *unedited* source (copying), and `au_mae_neutral`, the error of the source person with every AU "
        "at 0 (erasing the expression; on photos an all-zero reading). Targets are sparse, so erasing "
        "already scores well: a model edits only if it beats the neutral face *and* raises the asked AUs. "
        "`au_mae_gt` is the ground truth read the same way: the judge's ceiling. `au_raise` / `au_lower`: "
        "for every AU asked to change by at least 1 step, the share of the asked change the judge reads "
        "(edit minus source, over target minus source label), averaged per pair, then over the pairs that "
        "ask one; 1 = all of it, 0 = none (the source), and the neutral face scores about 0 on raises. "
        "`l1_raise`: L1 to the ground truth where the true edit shows features that neither the source nor "
        "the neutral face has (neither copying nor erasing passes it); `l1_unchanged`: L1 to the ground "
        "truth where the truth equals the source (any change there is an artifact; compare it with "
        "`l1_unchanged_source`). `au_mae_critic` reads the AUs with the model's own "
        "critic (the quantity it was trained on), so it flatters the model; trust the judge. "
        "On real photos `au_mae_mp` reads the edit with the MediaPipe AU proxies that labelled the data "
        "(`reports/annotator.md` says which AUs they validly read), beside its own floor; `mp_found` is the "
        "share of edits in which MediaPipe still finds a face (an edit without one reads as the neutral face). "
        "Paired metrics (`*_gt`) need ground truth and exist only on synthetic data; each has its "
        "\"changed nothing\" value beside it (`*_source`: the unedited source against the true target), "
        "so a model that barely touches the image cannot look good on them. "
        "Cells are mean ± 95% CI half-width over training seeds (Student t); with one seed only the "
        f"mean is shown. {fid_note}")


# ------------------------------------------------------------------------ writing
def build_report(metric_paths: list[Path], judge_metrics: Path | None, out_dir: Path,
                 boot: Bootstrap = Bootstrap(), baseline: str = "ganimation", reference: str = "dftnet",
                 remedies: dict[str, str] | None = None) -> Runs:
    """Read every run's metrics.json (and the judge's), write the CSVs, results.md and claims.md;
    return the runs read. ``remedies``: remedy variant -> the model it remedies
    (:func:`dftnet.config.remedy_of`): they get claims of their own, not ablation claims.
    Everything is rendered before anything is written, so a failure leaves the previous report
    as it was."""
    if not metric_paths:
        raise DataError("report: no metrics.json given")
    runs = Runs((load_run(Path(p)) for p in metric_paths), first=(reference, baseline))
    judge = None
    if judge_metrics is not None:
        try:
            judge = json.loads(Path(judge_metrics).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"{judge_metrics}: cannot read the judge's metrics JSON ({err})") from None
    remedies = remedies or {}
    claims = all_claims(runs, boot, reference, baseline, not_ablations=list(remedies))
    remedy_rows = remedy_claims(runs, remedies, boot, reference, baseline)
    csvs = {"results.csv": per_seed_frame(runs), "results_aggregate.csv": aggregate_frame(runs),
            "results_per_au.csv": per_au_frame(runs)}
    texts = {name: df.to_csv(index=False, na_rep="", float_format="%.6g") for name, df in csvs.items()}
    claims_md = claims_markdown(claims, runs, boot, remedy_rows)
    texts["claims.md"] = "# The paper's claims, checked\n\n" + claims_md
    texts["results.md"] = "\n\n".join([
        "# DFT-Net vs GANimation: results",
        f"{len(runs.runs)} runs: " + ", ".join(f"{_name(v)} ({len(runs.seeds(v))} seeds)" for v in runs.variants())
        + f", each evaluated on N = {n_pairs(runs)} test pairs. Numbers: `reports/results.csv` (per run), "
          "`reports/results_aggregate.csv` (over seeds), `reports/results_per_au.csv`. Inference time and FLOPs "
          "(claim 3): `reports/timing.md`.",
        "## Claims of the paper\n\n" + claims_md,
        "## How to read this\n\n" + how_to_read(runs),
        "## Over seeds (mean ± 95% CI half-width)\n\n" + aggregate_tables(runs),
        "## Per seed\n\n" + per_seed_tables(runs),
        "## AU error per AU: eyes and mouth (judge MAE, mean over seeds)\n\n" + per_au_table(runs),
        "## The AU judge's own quality\n\n" + judge_section(judge),
        "## Protocol\n\n" + protocol_section(runs),
    ]) + "\n"
    reports = Path(out_dir)
    for name, text in texts.items():
        atomic.write_text(reports / name, text)
    return runs


def build_timing_report(timing_path: Path, variants: Sequence[str], out_dir: Path, boot: Bootstrap = Bootstrap(),
                        baseline: str = "ganimation", reference: str = "dftnet") -> None:
    """``timing.md`` (claim 3 and the timing table) and ``results_timing.csv`` under ``out_dir``:
    every number read by the clock, in files of their own (they differ from machine to machine)."""
    timing = load_timing(timing_path)
    text = "\n\n".join([
        "# Inference time and FLOPs",
        "Read by the clock: these numbers differ from machine to machine and from run to run, unlike every "
        "other report (docs/reproducibility.md). Numbers: `reports/results_timing.csv`.",
        "## Claim 3\n\n" + speed_markdown(speed_claims(timing, boot, reference, baseline), boot).rstrip("\n"),
        "## Per architecture\n\n" + timing_table(timing, variants),
    ]) + "\n"
    csv = timing_frame(timing, variants).to_csv(index=False, na_rep="", float_format="%.6g")
    with atomic.staged(out_dir) as staging:
        atomic.write_text(staging / "timing.md", text)
        atomic.write_text(staging / "results_timing.csv", csv)
