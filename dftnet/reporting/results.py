"""Evaluated runs as the report reads them: ``eval/<variant>/seed<k>/metrics.json`` and
``timing/timing.json``, through the one metrics schema (:mod:`dftnet.eval.schema`).

Both the tables (:mod:`dftnet.reporting.report`) and the claims engine (:mod:`dftnet.reporting.claims`) read
runs only through :class:`Runs` and :class:`Timing`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from dftnet.runtime.errors import DataError
from dftnet.eval.schema import METRICS, N_KEY

NAMES = {"dftnet": "DFT-Net", "ganimation": "GANimation"}


def display_name(variant: str) -> str:
    return NAMES.get(variant, variant)


def num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table; a ``|`` inside a cell is escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _read_json(path: Path, what: str) -> dict:
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: cannot read {what} ({err})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: {what} must be a JSON object")
    return d


@dataclass
class Run:
    """One ``metrics.json``: a trained (variant, seed) evaluated once."""

    path: Path
    variant: str
    seed: int
    summary: dict
    per_pair: dict
    ci: dict
    per_au_mae: dict
    per_au_mae_source: dict
    protocol: dict
    identity: dict
    pair_ids: list[str] | None = None  # the evaluated pairs, in per-pair order
    clusters: list[str] | None = None  # the person each pair's source shows (what the claims resample)
    progress: dict | None = None  # reader -> reference -> "raise"/"lower" -> {"per_au": {AU: mean}}

    def value(self, metric: str) -> float | None:
        return num(self.summary.get(metric))

    def progress_per_au(self, reader: str, ref: str, way: str) -> dict[str, float]:
        """``{AU: mean progress}`` of ``reader`` ("judge" or "annotator") for ``ref`` ("edit", "gt",
        "neutral") and ``way`` ("raise", "lower"), over the AUs some pair asks that way."""
        block = (((self.progress or {}).get(reader) or {}).get(ref) or {}).get(way) or {}
        return {a: float(v) for a, v in (block.get("per_au") or {}).items() if v is not None and math.isfinite(v)}

    def pairs(self, metric: str) -> list[float] | None:
        """One value per test pair, in pair order (None where the metric has none; NaN for a
        pair without a value, e.g. one that asks no raise)."""
        v = self.per_pair.get(metric)
        return [math.nan if x is None else float(x) for x in v] if v else None


def _per_au_mae(block: dict | None) -> dict:
    """``{"AU01": mae, ...}`` from an evaluate_run AU block (``{"per_au": {"AU01": {"mae": ..}}}``)."""
    return {a: v.get("mae") for a, v in ((block or {}).get("per_au") or {}).items()}


def load_run(path: Path) -> Run:
    """Read one metrics.json; a missing or malformed key stops with the file and the key."""
    path = Path(path)
    d = _read_json(path, "metrics JSON")
    for key in ("variant", "seed", "summary", "protocol"):
        if key not in d:
            raise DataError(f"{path}: missing key {key!r}")
    for key in ("summary", "protocol"):
        if not isinstance(d[key], dict):
            raise DataError(f"{path}: {key!r} must be a mapping, got {type(d[key]).__name__}")
    missing = [k for k in METRICS if k not in d["summary"]]
    if missing:
        raise DataError(f"{path}: summary lacks metric {missing[0]!r} (written by an older evaluate? run it again)")
    if N_KEY not in d["protocol"]:
        raise DataError(f"{path}: protocol lacks {N_KEY!r}")
    for key in METRICS:
        v = d["summary"][key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise DataError(f"{path}: summary.{key} is {v!r}, expected a number or null")
    for key, values in (d.get("per_pair") or {}).items():
        if values is not None and (not isinstance(values, list) or not all(
                x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)) for x in values)):
            raise DataError(f"{path}: per_pair.{key} is not a list of numbers (or nulls)")
    au = d.get("au") or {}
    index = d.get("pairs") or {}
    pair_ids, clusters = index.get("pair_id"), index.get("source_identity")
    if pair_ids is not None and (not isinstance(pair_ids, list) or not isinstance(clusters, list)
                                 or len(pair_ids) != len(clusters)):
        raise DataError(f"{path}: pairs.pair_id and pairs.source_identity must be lists of one length")
    progress = {reader: block["progress"] for reader, block in (("judge", au), ("annotator", d.get("annotator") or {}))
                if isinstance(block.get("progress"), dict)}
    return Run(path, str(d["variant"]), int(d["seed"]), d["summary"], dict(d.get("per_pair") or {}),
               dict(d.get("ci") or {}), _per_au_mae(au.get("edit")), _per_au_mae(au.get("source")),
               dict(d["protocol"]), dict(d.get("identity") or {}), pair_ids, [str(c) for c in clusters or []] or None,
               progress)


class Runs:
    """All runs, indexed by variant and seed."""

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

    def of(self, variant: str) -> dict[int, Run]:
        return {r.seed: r for r in self.runs if r.variant == variant}

    def by_seed(self, variant: str, metric: str) -> dict[int, float | None]:
        return {r.seed: r.value(metric) for r in self.runs if r.variant == variant}

    def reason(self, metric: str) -> str:
        """Why a metric is null, from the protocols' ``unavailable`` maps ('' if none says)."""
        need = METRICS[metric].needs if metric in METRICS else ""
        for r in self.runs:
            why = (r.protocol.get("unavailable") or {}).get(need)
            if why:
                return str(why)
        return ""

    def protocol_values(self, field: str) -> list:
        """The distinct values of one protocol field over the runs, in run order."""
        out, seen = [], set()
        for r in self.runs:
            v = r.protocol.get(field)
            k = json.dumps(v, sort_keys=True)
            if v is not None and k not in seen:
                seen.add(k)
                out.append(v)
        return out


@dataclass
class Timing:
    """``timing/timing.json``: each variant's generator timed once (interleaved repeats) and its FLOPs."""

    path: Path
    models: dict  # variant -> {"b<bs>": {"ms_per_batch": [...], "ms_per_image_median": ..., ...}}
    flops: dict  # variant -> {"run": {...}, "paper": {...}}
    environment: dict
    protocol: dict

    def batch_sizes(self) -> list[int]:
        sizes = {int(k[1:]) for m in self.models.values() for k in m if k.startswith("b")}
        return sorted(sizes)

    def value(self, variant: str, key: str) -> float | None:
        if key.startswith("ms_per_image_b"):
            return num((self.models.get(variant) or {}).get(f"b{key[len('ms_per_image_b'):]}", {}).get("ms_per_image_median"))
        if key.startswith("gflops_"):
            return num(((self.flops.get(variant) or {}).get(key[len("gflops_"):]) or {}).get("gflops"))
        if key.startswith("params_"):
            return num(((self.flops.get(variant) or {}).get(key[len("params_"):]) or {}).get("params_millions"))
        raise KeyError(key)

    def passes(self, variant: str, batch_size: int) -> list[float] | None:
        b = (self.models.get(variant) or {}).get(f"b{batch_size}") or {}
        return b.get("ms_per_batch")


def load_timing(path: Path | None) -> Timing | None:
    """``timing/timing.json`` (None where no path is given); malformed content stops naming the file."""
    if path is None:
        return None
    d = _read_json(Path(path), "timing JSON")
    if not isinstance(d.get("models"), dict):
        raise DataError(f"{path}: missing key 'models'")
    for name, per_batch in d["models"].items():
        if not isinstance(per_batch, dict) or not per_batch:
            raise DataError(f"{path}: models.{name}: expected one entry per batch size")
        for b, m in per_batch.items():
            for key in ("ms_per_batch", "ms_per_image_median", "ms_per_image_iqr"):
                if not isinstance(m, dict) or key not in m:
                    raise DataError(f"{path}: models.{name}.{b}: missing key {key!r}")
            if not isinstance(m["ms_per_batch"], list) or not all(isinstance(t, (int, float)) for t in m["ms_per_batch"]):
                raise DataError(f"{path}: models.{name}.{b}.ms_per_batch: expected a list of numbers")
    for name, sizes in (d.get("flops") or {}).items():
        for size, f in (sizes or {}).items():
            if not isinstance(f, dict) or not isinstance(f.get("gflops"), (int, float)):
                raise DataError(f"{path}: flops.{name}.{size}: missing number 'gflops'")
    return Timing(Path(path), d["models"], dict(d.get("flops") or {}), dict(d.get("environment") or {}),
                  dict(d.get("protocol") or {}))
