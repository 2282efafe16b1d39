"""All-or-nothing file writes: write beside the target, then rename over it (``os.replace``).

A reader never sees half a file, and a failed write leaves the previous file as it was (its
temporary is removed).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_with(path: str | Path, writer: Callable[[Path], object]) -> None:
    """``writer(tmp)`` writes the file (``torch.save``, ``fig.savefig``, ``df.to_csv`` ...), atomically."""
    with replacing(path) as tmp:
        writer(tmp)
