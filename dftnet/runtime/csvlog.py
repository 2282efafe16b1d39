"""Per-run CSV logs (``log.csv``, ``curve.csv``) that survive a resume without duplicate rows."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from dftnet.runtime import atomic
from dftnet.runtime.errors import DataError


def restart(path: Path, columns: Sequence[str], keep_until_step: int) -> None:
    """Rewrite ``path`` with its header and only the rows at or before ``keep_until_step``
    (the checkpoint a run resumes from); a fresh run (0) starts empty."""
    rows = []
    if path.exists() and keep_until_step > 0:
        with path.open() as f:
            for line, r in enumerate(csv.DictReader(f), start=2):
                step = (r.get("step") or "").strip()
                if not step.isdigit():  # a half-written last row of a killed run, or a foreign file
                    raise DataError(f"{path} line {line}: step {step!r} is not a step number; "
                                    "delete the run folder to start over")
                if int(step) <= keep_until_step:
                    rows.append({k: r.get(k, "") for k in columns})

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)

    atomic.write_with(path, write)


def append(path: Path, columns: Sequence[str], row: dict) -> None:
    with path.open("a", newline="") as f:
        csv.DictWriter(f, columns).writerow(row)
