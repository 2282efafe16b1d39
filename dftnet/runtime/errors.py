"""Errors meant for people: each carries one line naming the file, row or key at fault, and
:func:`guarded`, which turns whatever stops a command into that one line and an exit status
(every pipeline script and ``dftnet`` subcommand runs through it)."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Callable


class BenchError(Exception):
    """Base class; the CLI prints ``str(err)`` on one line and exits with status 2."""


class ConfigError(BenchError):
    """A params key is unknown, mistyped or out of range."""


class DataError(BenchError):
    """An input file (image, AU table, id list, checkpoint) is missing or malformed."""


class TrainingDiverged(BenchError):
    """A loss became NaN or inf; the message names the step and the term."""


def first_line(err: BaseException | str, limit: int = 160) -> str:
    """The first line of an exception's message (library messages can run over several lines)."""
    return (str(err).strip().splitlines() or [""])[0][:limit]


def os_error_line(err: OSError) -> str:
    """``<file>: <reason>`` for a failed file operation (disk full, permission, a folder under a file ...)."""
    where = ": ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    return f"{where}: {err.strerror or err}" if where else f"{err.strerror or err}"


def guarded(fn: Callable[[], object]) -> int:
    """Run ``fn``; whatever stops it becomes one line on stderr, never a traceback.

    A BenchError (bad params, bad input, a diverged run) and a failed file operation (OSError:
    disk full, permission, a path under a file) exit 2; Ctrl-C exits 130; anything else is a bug
    of this suite, reported in one line with its type (exit 1; ``DFTNET_TRACEBACK=1`` shows it whole).

    Warnings that libraries emit meanwhile (e.g. Pillow's on a huge image) are held back: when
    the command stops with an error, that one line says what went wrong and they are dropped;
    when it succeeds, each is printed as one ``warning:`` line, without the library's source path.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        code = _guarded(fn)
    if code == 0:
        for w in caught:
            print(f"warning: {w.category.__name__}: {first_line(w.message, 200)}", file=sys.stderr)
    return code


def _guarded(fn: Callable[[], object]) -> int:
    try:
        fn()
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {os_error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("DFTNET_TRACEBACK"):
            raise
        print(f"error: unexpected {type(err).__name__}: {first_line(err, 200)} (a bug: rerun with DFTNET_TRACEBACK=1 "
              "and report it)", file=sys.stderr)
        return 1
    return 0
