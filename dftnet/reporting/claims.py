"""The claims engine: each claim -> one primary paired difference (Holm-corrected across the
claims) with supporting metrics beside it -> a verdict.

A difference is always *reference minus other*, paired by training seed and by test pair
(both models edited the same sources toward the same targets). Its 95% CI respects how the
data were drawn: every seed is evaluated on the same pairs and the pairs cluster in source
people, so the interval is :func:`dftnet.eval.stats.crossed_t_interval` (the seed and the
people variance components, Student t with Welch-Satterthwaite df); a metric with seed means
only gets a Student-t interval over the seeds. One metric's label:

- **supported**: the CI excludes 0 on the side the claim predicts;
- **contradicted**: the CI excludes 0 on the other side;
- **inconclusive**: the CI contains 0;
- **not measurable here**: the metric is unavailable (no weights, no ground truth), or a
  compared model did not pass the gate (:func:`gate`), so the comparison would measure noise.

A claim's verdict rests on its **primary** metric alone, with the p-values of the primaries
of all claims Holm-adjusted; supported (contradicted) needs the adjusted p below 0.05 with the
estimate on the claimed (other) side. The supporting metrics are evidence, not votes.

The gate: a model edits only if its AU error is below the **neutral face's** (the source
person with the expression erased) and its **raise progress** is above 0 (the unedited
source's), each with a CI that excludes the floor. Neither copying nor erasing passes both.

Inference time is a property of the architecture, not of a trained model: claim 3 reads the
timing stage's paired repeats (one measurement per variant) and FLOPs, and is not gated. It is
measured by the clock, so it differs between machines: it is its own family (:func:`speed_claims`,
``reports/timing.md``), and the claims table of the other claims stays byte-identical between
two runs of the same commit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence, TypedDict, cast

import numpy as np

from dftnet.eval.schema import EYELID_AU, HIGHER, LOWER, METRICS
from dftnet.eval.stats import bootstrap_median_difference, crossed_t_interval, holm, seed_t_interval
from dftnet.reporting.results import Runs, Timing, display_name as _name, md_table

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURABLE = "supported", "contradicted", "inconclusive", "not measurable here"
SOURCE, NEUTRAL = "source unchanged", "neutral face"  # the gate's references
ALPHA = 0.05


@dataclass(frozen=True)
class Bootstrap:
    """How the claims' resampling is seeded and sized (``eval.bootstrap``, ``eval.seed``): the
    timing's median differences are bootstrapped; the level is every interval's."""

    resamples: int = 1000
    seed: int = 0
    level: float = 0.95


def verdict(lo: float, hi: float, better: str) -> str:
    """Verdict of a CI of (reference - other) for a claim that the reference is better."""
    favours_ref, favours_other = (hi < 0, lo > 0) if better == LOWER else (lo > 0, hi < 0)
    return SUPPORTED if favours_ref else CONTRADICTED if favours_other else INCONCLUSIVE


# ------------------------------------------------------------------ differences
@dataclass(frozen=True)
class Difference:
    """Reference minus other on one metric, paired by seed and test pair, with its CI."""

    metric: str
    reference: str
    other: str
    status: str
    better: str = LOWER
    ref_mean: float | None = None
    other_mean: float | None = None
    diff: float | None = None
    lo: float | None = None
    hi: float | None = None
    n_seeds: int = 0
    n_pairs: int = 0  # per seed; 1 = seed means only
    reason: str = ""
    fmt: str = "{:.3f}"
    over: str = ""  # what the CI is over, where not "<n> seeds x <n> pairs of <n> people"
    p: float | None = None  # two-sided p-value of 0
    p_holm: float | None = None  # Holm-adjusted across the claims' primaries (primaries only)
    n_clusters: int = 0

    def describe(self) -> str:
        if self.status == NOT_MEASURABLE:
            return f"`{self.metric}`: not measurable ({self.reason})"
        f = self.fmt
        over = self.over or f"{self.n_seeds} seeds x {self.n_pairs} pairs of {self.n_clusters} people"
        ps = "" if self.p is None else f"; p = {self.p:.3g}" + ("" if self.p_holm is None else f", Holm {self.p_holm:.3g}")
        text = (f"`{self.metric}` ({self.better} is better): {_name(self.reference)} {f.format(self.ref_mean)} vs "
                f"{_name(self.other)} {f.format(self.other_mean)}; difference {f.format(self.diff)} "
                f"[95% CI {f.format(self.lo)}, {f.format(self.hi)}] over {over}{ps}: {self.status}")
        return text + (f" ({self.reason})" if self.reason else "")


class _Labels(TypedDict):
    """The fields every :class:`Difference` of one comparison shares (:func:`paired_difference`)."""

    metric: str
    reference: str
    other: str
    better: str
    fmt: str


def _matrix(runs: dict, key: str, seeds: list[int]) -> tuple[np.ndarray | None, list[str] | None]:
    """Seeds x pairs values of ``key`` and the pairs' people, or (None, None) when a seed lacks
    per-pair values or the seeds were evaluated on different pairs."""
    rows = [runs[s].pairs(key) for s in seeds]
    if any(r is None for r in rows) or len({len(r) for r in rows}) != 1:
        return None, None
    ids = [tuple(runs[s].pair_ids or ()) for s in seeds]
    if len(set(ids)) != 1:
        return None, None
    clusters = runs[seeds[0]].clusters or [str(i) for i in range(len(rows[0]))]
    return np.asarray(rows, dtype=np.float64), clusters


def paired_difference(runs: Runs, metric: str, reference: str, other: str, boot: Bootstrap = Bootstrap(),
                      other_key: str | None = None) -> Difference:
    """``metric`` of ``reference`` minus that of ``other``, seed by seed and pair by pair.

    ``other_key``: compare ``reference`` with one of its own reference values instead (a floor
    key of the same runs, e.g. ``au_mae_neutral``); ``other`` is then only a label.
    """
    m = METRICS[metric]
    better = m.better if m.better in (LOWER, HIGHER) else LOWER
    base = _Labels(metric=metric, reference=reference, other=other, better=better, fmt=m.fmt)
    ref_runs = runs.of(reference)
    other_runs = ref_runs if other_key else runs.of(other)
    other_key = other_key or metric
    for name, got in ((reference, ref_runs), (other, other_runs)):
        if not got:
            return Difference(status=NOT_MEASURABLE, reason=f"no metric files for variant `{name}`", **base)
    seeds = sorted(set(ref_runs) & set(other_runs))
    if not seeds:
        return Difference(status=NOT_MEASURABLE, reason="the two variants share no seed", **base)
    seeds = [s for s in seeds if ref_runs[s].value(metric) is not None and other_runs[s].value(other_key) is not None]
    if not seeds:
        return Difference(status=NOT_MEASURABLE, reason=f"metric is null: {runs.reason(metric) or 'not computed'}", **base)
    a, clusters = _matrix(ref_runs, metric, seeds)
    b, _ = _matrix(other_runs, other_key, seeds)
    same_pairs = ref_runs[seeds[0]].pair_ids == other_runs[seeds[0]].pair_ids
    if a is not None and b is not None and a.shape == b.shape and same_pairs:
        ci = crossed_t_interval(a - b, clusters, boot.level)
        ref_mean = float(np.mean([np.nanmean(r) for r in a]))
        other_mean = float(np.mean([np.nanmean(r) for r in b]))
    else:
        va = [cast(float, ref_runs[s].value(metric)) for s in seeds]  # the seeds were kept above for their values
        vb = [cast(float, other_runs[s].value(other_key)) for s in seeds]
        ci = seed_t_interval([x - y for x, y in zip(va, vb)], boot.level)
        ref_mean, other_mean = float(np.mean(va)), float(np.mean(vb))
        if ci["ci"] is None:
            return Difference(status=INCONCLUSIVE, ref_mean=ref_mean, other_mean=other_mean, diff=ci["estimate"],
                              n_seeds=ci["n_seeds"], n_pairs=1, reason="one seed mean: no interval", **base)
    lo, hi = ci["ci"]
    over = ci["method"] if ci["n_pairs"] == 1 else ""
    return Difference(status=verdict(lo, hi, better), ref_mean=ref_mean, other_mean=other_mean, diff=ci["estimate"],
                      lo=lo, hi=hi, n_seeds=ci["n_seeds"], n_pairs=ci["n_pairs"], n_clusters=ci["n_clusters"],
                      p=ci["p"], over=over, **base)


# The AU reading behind the gate and the ablation claims: the trained judge, except on real
# photos, where the evaluation's reading is the MediaPipe AU proxies that labelled the data
# (a fixed network, never trained on these images; the judge is reported beside it).
# (error key, raise-progress key, name)
AU_READERS = (("au_mae_mp", "au_raise_mp", "MediaPipe AU proxy"), ("au_mae", "au_raise", "judge"))


def au_reader(runs: Runs) -> tuple[str, str, str]:
    """(AU error key, raise-progress key, name) of the AU reading the gate uses (:data:`AU_READERS`)."""
    for reader in AU_READERS:
        if any(r.value(reader[0]) is not None for r in runs.runs):
            return reader
    return AU_READERS[-1]


@dataclass(frozen=True)
class Gate:
    """Does ``variant`` edit? Its AU error below the neutral face's, and its raise progress above
    the unedited source's (0), each with a CI that excludes the floor."""

    variant: str
    error: Difference  # AU error minus the neutral face's (supported: below)
    raises: Difference  # raise progress minus the source's (supported: above 0)

    @property
    def status(self) -> str:
        parts = (self.error.status, self.raises.status)
        if NOT_MEASURABLE in parts:
            return NOT_MEASURABLE
        return SUPPORTED if parts == (SUPPORTED, SUPPORTED) else INCONCLUSIVE

    def why_not(self) -> str | None:
        """Why ``variant`` may carry no verdict on edit quality, or None when it edits."""
        if self.status == SUPPORTED:
            return None
        bad = [d for d in (self.error, self.raises) if d.status != SUPPORTED]
        if any(d.status == NOT_MEASURABLE for d in bad):
            return f"{_name(self.variant)}'s editing cannot be checked ({bad[0].reason})"
        return f"{_name(self.variant)} did not pass the gate (" + "; ".join(
            f"`{d.metric}` {d.ref_mean:.3f} vs {d.other} {d.other_mean:.3f}, difference CI [{d.lo:.3f}, {d.hi:.3f}]"
            for d in bad) + ")"


def gate(runs: Runs, variant: str, boot: Bootstrap = Bootstrap()) -> Gate:
    err, rise, _ = au_reader(runs)
    return Gate(variant, paired_difference(runs, err, variant, NEUTRAL, boot, other_key=f"{err}_neutral"),
                paired_difference(runs, rise, variant, SOURCE, boot, other_key=f"{rise}_source"))


def not_learned(runs: Runs, variant: str, boot: Bootstrap = Bootstrap()) -> str | None:
    """Why ``variant`` may carry no verdict on edit quality, or None when it passes the gate."""
    return gate(runs, variant, boot).why_not()


def gated(runs: Runs, metric: str, reference: str, other: str, boot: Bootstrap) -> Difference:
    """:func:`paired_difference`, not measurable when either model did not pass the gate."""
    for v in (reference, other):
        why = not_learned(runs, v, boot) if runs.seeds(v) else None
        if why:
            m = METRICS[metric]
            return Difference(metric=metric, reference=reference, other=other, status=NOT_MEASURABLE,
                              better=m.better, reason=why, fmt=m.fmt)
    return paired_difference(runs, metric, reference, other, boot)


# ----------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    whose: str  # whose claim it is, and what the paper itself showed
    verdict: str
    why: str
    evidence: tuple[str, ...]
    n_seeds: int = 0
    n_pairs: int = 0
    primary: Difference | None = None  # the difference the verdict rests on (None: a summary claim)
    support: tuple[Difference, ...] = ()


def first_measurable(diffs: Sequence[Difference]) -> Difference:
    """The primary metric: the first of the claim's candidates that is measurable here (the
    candidates are ordered by preference: a judge-free paired measure before a judge reading)."""
    return next((d for d in diffs if d.status != NOT_MEASURABLE), diffs[0])


def _claim(id: str, text: str, whose: str, primary: Difference, support: Sequence[Difference] = (),
           extra: Sequence[str] = ()) -> Claim:
    """A claim before the Holm step: its verdict is its primary's unadjusted label for now."""
    evidence = (f"**primary** {primary.describe()}",) + tuple(f"supporting: {d.describe()}" for d in support)
    return Claim(id, text, whose, primary.status, primary.reason if primary.status == NOT_MEASURABLE else "",
                 evidence + tuple(extra), primary.n_seeds, primary.n_pairs, primary, tuple(support))


def claim_eyelids(runs: Runs, boot: Bootstrap, reference: str = "dftnet", baseline: str = "ganimation") -> Claim:
    """(1) The paper's Fig. 3: DFT-Net synthesises eyelids (AU45) better than GANimation. Primary:
    L1 to the ground truth in the eye box (judge-free); else the judge's AU45 error."""
    cands = [gated(runs, m, reference, baseline, boot) for m in ("l1_gt_eyes", f"au_mae_{EYELID_AU}", "ssim_gt_eyes")]
    primary = first_measurable(cands)
    return _claim("1", f"{_name(reference)} beats {_name(baseline)} at eyelid synthesis ({EYELID_AU})",
                  "the paper's (Fig. 3: closing and opening eyes beside GANimation's; qualitative, no number). "
                  "Measured here against ground truth in the eye box, and by the judge's AU45 error",
                  primary, [d for d in cands if d is not primary])


# Claim 2's measures of artifacts, primary first (the remedies' claims read the same).
ARTIFACT_METRICS = ("l1_unchanged", "fid", "lpips_gt", "ssim_gt")


def claim_artifacts(runs: Runs, boot: Bootstrap, reference: str = "dftnet", baseline: str = "ganimation") -> Claim:
    """(2) Fewer artifacts. Primary: L1 to the ground truth where the truth equals the source (the
    unchanged region: any change there is an artifact); FID and the whole-image paired measures support."""
    cands = [gated(runs, m, reference, baseline, boot) for m in ARTIFACT_METRICS]
    primary = first_measurable(cands)
    whose = ("the paper's (abstract and Figs. 3-4, qualitative: artifacts where components deform; the paper "
             "reports no image metric). Measured here by the change where nothing should change (paired with "
             "the synthetic ground truth) and by FID")
    return _claim("2", f"{_name(reference)} shows fewer artifacts than {_name(baseline)}", whose, primary,
                  [d for d in cands if d is not primary])


def claim_speed(timing: Timing | None, boot: Bootstrap, reference: str = "dftnet", baseline: str = "ganimation") -> Claim:
    """(3) DFT-Net is faster at inference: the median ms per image of paired timing repeats, per
    batch size (primary: the smallest), with a bootstrap over the repeats; FLOPs beside it."""
    text = f"{_name(reference)} is faster at inference than {_name(baseline)}"
    whose = "the paper's (it reports inference time, its one number). An architecture property: one timing per variant"
    if timing is None or reference not in timing.models or baseline not in timing.models:
        missing = Difference("ms_per_image", reference, baseline, NOT_MEASURABLE,
                             reason="no timing of both generators (timing/timing.json)")
        return _claim("3", text, whose, missing)
    diffs = []
    a: list[float] | np.ndarray | None
    b: list[float] | np.ndarray | None
    for bs in timing.batch_sizes():
        a, b = timing.passes(reference, bs), timing.passes(baseline, bs)
        key = f"ms_per_image_b{bs}"
        if not a or not b or len(a) != len(b):
            diffs.append(Difference(key, reference, baseline, NOT_MEASURABLE, reason="no paired timing repeats"))
            continue
        a, b = np.asarray(a) / bs, np.asarray(b) / bs
        d = bootstrap_median_difference(a, b, boot.resamples, boot.seed, boot.level)
        lo, hi = d["ci"]
        diffs.append(Difference(key, reference, baseline, verdict(lo, hi, LOWER), LOWER, float(np.median(a)),
                                float(np.median(b)), d["estimate"], lo, hi, 1, d["n"], fmt="{:.3f}",
                                over=f"{d['n']} paired timed passes (medians; the passes resampled)", p=d["p"]))
    extra = []
    for size in ("run", "paper"):
        fr, fb = (timing.flops.get(x, {}).get(size) for x in (reference, baseline))
        if fr and fb and fb.get("gflops"):
            extra.append(f"FLOPs at {size} size ({fr['image_size']} px, {fr.get('base_channels')} ch, "
                         f"{fr.get('n_res_blocks')} res. blocks): {_name(reference)} {fr['gflops']:.3f} G vs "
                         f"{_name(baseline)} {fb['gflops']:.3f} G per image ({fr['gflops'] / fb['gflops']:.2f}x)")
    if extra:
        extra.append("more FLOPs cannot run faster on the same kernels: a speed-up would need "
                     "cheaper operations, not less arithmetic")
    env = timing.environment
    extra.append(f"timed on {env.get('device_name', '?')}, {env.get('threads', '?')} threads")
    primary = first_measurable(diffs)
    return _claim("3", text, whose, primary, [d for d in diffs if d is not primary], extra)


def ablation_metrics(runs: Runs) -> tuple[str, ...]:
    """Claim 4's candidates, none of which copying or erasing can win: L1 on the raise mask
    (judge-free; synthetic only), then raise progress and AU error of the gate's reader."""
    err, rise, _ = au_reader(runs)
    return ("l1_raise", rise, err)


def claim_ablations(runs: Runs, boot: Bootstrap, reference: str = "dftnet", baseline: str = "ganimation",
                    not_ablations: Sequence[str] = ()) -> list[Claim]:
    """(4) Each ablation hurts: the full model beats every other variant on its primary metric.

    Every variant but the two models and ``not_ablations`` (the remedies) is an ablation.
    Returns the overall claim first, then one claim per ablation.
    """
    whose = "this suite's, not the paper's (the paper reports no ablation numbers)"
    ablations = [v for v in runs.variants() if v not in (reference, baseline, *not_ablations)]
    per = []
    for i, v in enumerate(ablations):
        cands = [gated(runs, m, reference, v, boot) for m in ablation_metrics(runs)]
        primary = first_measurable(cands)
        per.append(_claim(f"4.{i + 1}", f"ablation `{v}` is worse than {_name(reference)}", whose, primary,
                          [d for d in cands if d is not primary]))
    if not per:
        return [Claim("4", "each ablation hurts", whose, NOT_MEASURABLE, "no ablation variant in the metric files", ())]
    return [_ablation_summary(per, ablations, whose)] + per


def _ablation_summary(per: Sequence[Claim], ablations: Sequence[str], whose: str) -> Claim:
    verdicts = {c.verdict for c in per}
    measured = verdicts - {NOT_MEASURABLE}
    overall = (NOT_MEASURABLE if not measured else SUPPORTED if verdicts == {SUPPORTED}
               else CONTRADICTED if verdicts == {CONTRADICTED} else INCONCLUSIVE)
    why = "; ".join(f"`{v}`: {c.verdict}" for v, c in zip(ablations, per))
    n = min((c.n_seeds for c in per if c.verdict != NOT_MEASURABLE), default=0)
    return Claim("4", f"each ablation hurts ({', '.join(ablations)})", whose, overall, why, (), n)


def correct(claims: Sequence[Claim]) -> list[Claim]:
    """Holm across the claims' primaries: each verdict from its adjusted p (below :data:`ALPHA`,
    on the claimed side: supported; on the other: contradicted; else inconclusive)."""
    tested = [c.primary if c.primary is not None and c.primary.status != NOT_MEASURABLE and c.primary.p is not None
              else None for c in claims]
    adjusted = holm([d.p if d is not None else None for d in tested])
    out = []
    for c, d, p_adj in zip(claims, tested, adjusted):
        if d is None:
            out.append(c)
            continue
        assert d.diff is not None and p_adj is not None  # a tested primary has an estimate and a p-value
        primary = replace(d, p_holm=p_adj)
        favours_ref = d.diff < 0 if d.better == LOWER else d.diff > 0
        v = INCONCLUSIVE if p_adj >= ALPHA else SUPPORTED if favours_ref else CONTRADICTED
        why = (f"primary `{d.metric}`: difference {d.fmt.format(d.diff)} [95% CI {d.fmt.format(d.lo)}, "
               f"{d.fmt.format(d.hi)}], Holm-adjusted p = {p_adj:.3g} over {len(adjusted) - adjusted.count(None)} "
               "claims")
        evidence = (f"**primary** {primary.describe()}",) + c.evidence[1:]
        out.append(replace(c, verdict=v, why=why, evidence=evidence, primary=primary))
    summary = [i for i, c in enumerate(out) if c.id == "4" and c.primary is None]
    per = [c for c in out if c.id.startswith("4.")]
    if summary and per:
        i = summary[0]
        out[i] = _ablation_summary(per, [cast(Difference, c.primary).other for c in per], out[i].whose)
    return out


def all_claims(runs: Runs, boot: Bootstrap = Bootstrap(), reference: str = "dftnet",
               baseline: str = "ganimation", not_ablations: Sequence[str] = ()) -> list[Claim]:
    """The claims measured on the trained runs (1, 2, 4), Holm-adjusted together. Claim 3 (speed)
    is read by the clock: :func:`speed_claims`; the remedies are their own family: :func:`remedy_claims`."""
    return correct([claim_eyelids(runs, boot, reference, baseline), claim_artifacts(runs, boot, reference, baseline)]
                   + claim_ablations(runs, boot, reference, baseline, not_ablations))


def remedy_claims(runs: Runs, remedies: dict[str, str], boot: Bootstrap = Bootstrap(), reference: str = "dftnet",
                  baseline: str = "ganimation") -> list[Claim]:
    """R.k: remedy ``k`` (a variant, not in either paper) leaves fewer artifacts than the faithful
    model it remedies (``remedies``: variant -> that model, :func:`dftnet.config.remedy_of`):
    claim 2's measures, remedy minus model, both gated. Then claim 2 asked again of each pair of
    remedies, one of ``reference``'s and one of ``baseline``'s: once each model's own artifact is
    remedied, does the first still show fewer than the second? A family of its own (Holm over
    these claims only), so the paper's claims are not corrected for the suite's own questions."""
    whose = "this suite's: does a remedy (docs/recipe.md) do what it is for"
    present = sorted(r for r in remedies.items() if runs.seeds(r[0]) and runs.seeds(r[1]))
    pairs = list(present) + [(a, b) for a, of_a in present for b, of_b in present if of_a == reference and of_b == baseline]
    out = []
    for i, (v, other) in enumerate(pairs):
        cands = [gated(runs, m, v, other, boot) for m in ARTIFACT_METRICS]
        primary = first_measurable(cands)
        if other in remedies:
            text = f"remedied, {_name(reference)} shows fewer artifacts than {_name(baseline)} (`{v}` vs `{other}`)"
            why = (f"this suite's: the paper's claim 2 asked of the remedied models, {_name(reference)}'s remedy "
                   f"against {_name(baseline)}'s (docs/recipe.md)")
        else:
            text, why = f"remedy `{v}` shows fewer artifacts than {_name(other)}", whose
        out.append(_claim(f"R.{i + 1}", text, why, primary, [d for d in cands if d is not primary]))
    return correct(out)


def speed_claims(timing: Timing | None, boot: Bootstrap = Bootstrap(), reference: str = "dftnet",
                 baseline: str = "ganimation") -> list[Claim]:
    """Claim 3, a family of its own (Holm over one claim: its own p)."""
    return correct([claim_speed(timing, boot, reference, baseline)])


SPEED_ELSEWHERE = ("Claim 3 (DFT-Net is faster at inference) is measured by the clock, so its numbers differ "
                   "from machine to machine: it is checked in `reports/timing.md`, beside the timing table, as a "
                   "family of its own. Nothing on this page is read from a clock.")


RULE = (
    "**Rule.** Every difference is *reference minus other*, paired by training seed and by test pair. Its 95% CI "
    "respects the design: every seed is evaluated on the same pairs, and the pairs cluster in source people, so "
    "the interval adds the seeds' and the people's variance components and uses a Student-t quantile with "
    "Welch-Satterthwaite degrees of freedom (a metric with seed means only: Student t over the seeds). A metric "
    "**supports** a claim when its CI excludes 0 on the side the claim predicts, **contradicts** it when the CI "
    "excludes 0 on the other side, and is **inconclusive** when the CI contains 0. A claim's verdict rests on its "
    "**primary** metric alone, with the primaries' p-values Holm-adjusted across the claims (adjusted p < 0.05); "
    "the supporting metrics are evidence, not votes. A claim is **not measurable here** when its metric is "
    "unavailable, or when a compared model did not pass the gate below.")


def gate_table(runs: Runs, boot: Bootstrap) -> str:
    """Does each model edit? Its AU error beside every floor and the ceiling, its raise progress,
    and the two gate differences with their CIs."""
    err, rise, reader = au_reader(runs)
    rows = []
    gates = [gate(runs, v, boot) for v in runs.variants()]
    for v, g in zip(runs.variants(), gates):
        means = [_mean(runs, v, k) for k in (err, f"{err}_source", f"{err}_neutral", f"{err}_gt", rise, f"{rise}_gt")]
        cells = [_name(v)] + ["" if x is None else f"{x:.3f}" for x in means]
        for d in (g.error, g.raises):
            cells.append(f"{d.diff:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}]" if d.lo is not None else d.reason or d.status)
        cells.append("**edits**" if g.status == SUPPORTED else
                     f"cannot tell ({g.why_not()})" if g.status == NOT_MEASURABLE else
                     "**did not pass**: no verdict rests on it")
        rows.append(cells)
    n = next((g.error for g in gates if g.error.n_seeds), None)
    over = f" CIs over {n.n_seeds} seeds x {n.n_pairs} pairs of {n.n_clusters} people." if n else ""
    return (f"AU readings by the {reader}. Floors: the unedited source (copying) and the neutral face (erasing: "
            "the source person with every AU at 0; on photos an all-zero reading); ceiling: the ground truth "
            f"read the same way (synthetic data only).{over}\n\n" + md_table(
                ["variant", "AU MAE, edit", "source (floor)", "neutral face (floor)", "ground truth (ceiling)",
                 "raise progress, edit", "raise progress, ground truth", "edit - neutral, AU MAE [95% CI]",
                 "edit - source, raise progress [95% CI]", "gate"], rows))


def _mean(runs: Runs, variant: str, key: str) -> float | None:
    vals = [x for x in runs.by_seed(variant, key).values() if x is not None]
    return float(np.mean(vals)) if vals else None


def claims_table(claims: Sequence[Claim]) -> str:
    rows = [[c.id, c.text, c.whose, "<br>".join(c.evidence) or "see the rows below", f"**{c.verdict}**", c.why]
            for c in claims]
    return md_table(["#", "claim", "whose claim; what the paper showed", "measured evidence (95% CIs)", "verdict",
                      "why"], rows)


def claims_markdown(claims: Sequence[Claim], runs: Runs, boot: Bootstrap, remedies: Sequence[Claim] = ()) -> str:
    seeds = runs.seeds()
    text = (f"**Does each model edit?** (the gate: AU error below the neutral face's and raise progress above 0, "
            f"each CI excluding the floor)\n\n{gate_table(runs, boot)}\n\n{RULE}\n\nSeeds {seeds}.\n\n"
            f"{claims_table(claims)}\n\n{SPEED_ELSEWHERE}\n")
    if remedies:
        text += ("\n**The remedies** (variants that are not in either paper, docs/recipe.md; not ablations): does each "
                 "leave fewer artifacts than the model it remedies, and, both remedied, does DFT-Net's still show fewer "
                 f"than GANimation's? The same rule, Holm-adjusted over these rows only.\n\n{claims_table(remedies)}\n")
    return text


def speed_markdown(claims: Sequence[Claim], boot: Bootstrap) -> str:
    """Claim 3's table, with how its medians were resampled."""
    return (f"Timing medians bootstrapped with {boot.resamples} resamples (seed {boot.seed}); the verdict rule is "
            f"`reports/claims.md`'s, with this claim Holm-adjusted on its own.\n\n{claims_table(claims)}\n")
