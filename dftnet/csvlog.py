"""Per-run CSV logs (``log.csv``, ``curve.csv``) that survive a resume without duplicate rows."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence


def restart(path: Path, columns: Sequence[str], keep_until_step: int) -> None:
    """Rewrite ``path`` with its header and only the rows at or before ``keep_until_step``
    (the checkpoint a run resumes from); a fresh run (0) starts empty."""
    rows = []
    if path.exists() and keep_until_step > 0:
        with path.open() as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until_step]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def append(path: Path, columns: Sequence[str], row: dict) -> None:
    with path.open("a", newline="") as f:
        csv.DictWriter(f, columns).writerow(row)
