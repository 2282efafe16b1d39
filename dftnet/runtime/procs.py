"""Worker processes that never outlive the stage that started them."""

from __future__ import annotations

import os


def die_with_parent(parent: int) -> None:
    """Worker initialiser: the kernel kills this worker when its parent dies (Linux
    ``PR_SET_PDEATHSIG``), so a killed ``train`` stage (CI timeout, OOM killer, Ctrl-C) leaves no
    orphan training on into the run folders."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the run-folder lock still stops a second writer
        pass
    if os.getppid() != parent:  # the parent died before the call above
        os._exit(1)
