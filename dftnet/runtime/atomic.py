"""All-or-nothing file writes: write beside the target, then rename over it (``os.replace``).

A reader never sees half a file, and a failed write leaves the previous file as it was (its
temporary is removed). A writer that fails on a full disk is reported as that, whatever the
library raised (``torch.save`` raises a RuntimeError, not an OSError): see :func:`replacing`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    new_folders = _missing_folders(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    done = False
    try:
        yield tmp
        os.replace(tmp, path)
        done = True
    except OSError:
        raise
    except Exception as err:  # a library's own error class for a failed write: was the disk full?
        if disk_full(path.parent):
            raise OSError(errno.ENOSPC, f"no space left on device ({type(err).__name__} while writing; the previous "
                          "file, if any, is kept)", str(path)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
        if not done:
            _remove_empty(new_folders)


def _missing_folders(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, deepest first."""
    return [d for d in (path.parent, *path.parent.parents) if not d.exists()]


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) where empty: a failed write leaves no folder it made."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


FULL_BELOW = 8 * 2**20  # bytes free under which a failed write is put down to a full disk


def disk_full(folder: str | Path) -> bool:
    """True when the file system holding ``folder`` has less than :data:`FULL_BELOW` bytes free."""
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW
    except OSError:
        return False


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_with(path: str | Path, writer: Callable[[Path], object]) -> None:
    """``writer(tmp)`` writes the file (``torch.save``, ``fig.savefig``, ``df.to_csv`` ...), atomically."""
    with replacing(path) as tmp:
        writer(tmp)


# ------------------------------------------------------------------- folders
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def temp_dir_beside(dest: str | Path, kind: str = "tmp") -> Path:
    """A fresh hidden folder ``.<name>.<kind>-<pid>-<random>`` beside ``dest``. Such folders left
    by processes that have died (killed mid-write) are removed first."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dest.name}.{kind}-"
    for stale in dest.parent.glob(prefix + "*"):
        pid = stale.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=dest.parent, prefix=f"{prefix}{os.getpid()}-"))


def swap_dir(tmp: Path, dest: Path) -> None:
    """Rename folder ``tmp`` to ``dest``, replacing an existing ``dest`` (restored on failure)."""
    if not dest.exists():
        os.replace(tmp, dest)
        return
    old = temp_dir_beside(dest, "old")
    os.replace(dest, old / dest.name)
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.replace(old / dest.name, dest)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged(dest: str | Path) -> Iterator[Path]:
    """All-or-nothing outputs under folder ``dest``: write them under the yielded staging folder
    (same relative paths); when the block succeeds every file is moved into ``dest`` (replacing
    files of the same name, leaving others), when it fails nothing in ``dest`` has changed."""
    dest = Path(dest)
    new_folders = _missing_folders(dest)
    tmp = temp_dir_beside(dest, "staging")
    done = False
    try:
        yield tmp
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            target = dest / path.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:  # a failed run leaves no empty folders it made for the staging folder
            _remove_empty(new_folders)


@contextlib.contextmanager
def exclusive(folder: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (``<folder>/.lock``, released when the process dies):
    a second process writing into the same folder stops with one line instead of interleaving."""
    import fcntl

    from dftnet.runtime.errors import DataError

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{folder}: another process is already {what} here; wait for it or stop it") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
