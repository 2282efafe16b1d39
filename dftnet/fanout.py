"""Every variant's training at once, through DVC's experiment queue, and one report over them all.

    dftnet fanout --jobs N        # = the steps below

1. ``dvc repro judge``: the dataset and the AU judge, which every training run reads, once.
2. ``dvc exp run --queue train@<variant>`` for each variant: one queued experiment per variant,
   each running only its training stage (its seeds inside it: in parallel on the CPU, one per
   GPU on a GPU machine) in its own temporary workspace, so runs never share a folder.
3. ``dvc queue start -j N``: N workers take the experiments, N at a time. On a machine with
   several GPUs each training process claims a GPU no other run holds
   (:func:`dftnet.runtime.numerics.claim_gpu`), so N workers on N GPUs train on N devices.
4. ``dvc repro``: DVC finds each ``train@<variant>`` with the same code, data and params in
   its run cache (the queue's workspaces share this repository's cache) and checks its outputs
   out instead of training again; evaluation, timing and the report then see every run.

A failed experiment stops the fan-out with one line naming it and the command that shows its log.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from dftnet.runtime.errors import DataError

ACTIVE = ("Queued", "Running")


def _dvc(dvc: str, args: list[str], cwd: Path, echo=None) -> str:
    """``dvc <args>``'s output (stdout and stderr); ``echo``: a stream to pass each line on to as
    it comes. A failure is one line: dvc's last."""
    proc = subprocess.Popen([dvc, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None  # stdout=PIPE
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if echo is not None:
            print(line, end="", file=echo)
    if proc.wait() != 0:
        last = [ln.strip() for ln in lines if ln.strip()]
        raise DataError(f"dvc {' '.join(args)} failed: {last[-1] if last else f'exit {proc.returncode}'}")
    return "".join(lines)


def queue_states(status_text: str) -> dict[str, str]:
    """Experiment name -> status from ``dvc queue status``'s table (Task, Name, Created, Status)."""
    states = {}
    for line in status_text.splitlines():
        cols = re.split(r"\s{2,}", line.strip())
        if len(cols) >= 4 and cols[0] != "Task":
            states[cols[1]] = cols[-1]
    return states


def train_in_parallel(variants: list[str], jobs: int, cwd: str | Path = ".", dvc: str = "dvc",
                      poll_s: float = 2.0, repro: bool = True, log=sys.stderr) -> dict:
    """Queue one experiment per variant, run them ``jobs`` at a time, wait, then ``dvc repro``.

    Returns ``{"experiments": {variant: name}, "most_running": k, "retrained": [...], "seconds": s}``:
    ``most_running`` is the largest number of these experiments ``dvc queue status`` showed
    running at once; ``retrained``: variants the final ``dvc repro`` trained again because the
    run cache had no match (then a warning is printed).
    """
    if jobs < 1:
        raise DataError(f"--jobs: expected at least 1, got {jobs}")
    cwd, t0 = Path(cwd), time.time()
    print("fanout: dataset and judge first (dvc repro judge)", file=log)
    _dvc(dvc, ["repro", "judge"], cwd, log)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = {v: f"train-{v.replace('_', '-')}-{stamp}" for v in variants}
    for v, name in names.items():
        _dvc(dvc, ["exp", "run", "--queue", "-n", name, f"train@{v}"], cwd)
    print(f"fanout: {len(names)} experiments queued; dvc queue start -j {jobs}", file=log)
    # The workers it starts are daemons that inherit its output: read through a pipe, this call
    # would last until they exit. So no pipe; they log to the queue (dvc queue logs <name>).
    started = subprocess.run([dvc, "queue", "start", "-j", str(jobs)], cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if started.returncode != 0:
        raise DataError(f"dvc queue start -j {jobs} failed (exit {started.returncode}); try it by hand to see why")
    most = 0
    while True:
        states = {v: queue_states(_dvc(dvc, ["queue", "status"], cwd)).get(n, "Queued") for v, n in names.items()}
        most = max(most, sum(s == "Running" for s in states.values()))
        if not any(s in ACTIVE for s in states.values()):
            break
        time.sleep(poll_s)
    _dvc(dvc, ["queue", "stop"], cwd)
    failed = [v for v, s in states.items() if s != "Success"]
    if failed:
        v = failed[0]
        raise DataError(f"train@{v}: its queued experiment {names[v]} ended {states[v]}; "
                        f"see dvc queue logs {names[v]}")
    print(f"fanout: every variant trained ({most} at once at most, {time.time() - t0:.0f} s); "
          "dvc repro collects them from the run cache", file=log)
    retrained = []
    if repro:
        said = _dvc(dvc, ["repro"], cwd, log)
        retrained = [v for v in variants if f"Running stage 'train@{v}'" in said]
        if retrained:  # not an error: the runs exist, but the parallel training was spent
            print(f"fanout: warning: dvc repro trained {', '.join(retrained)} again (not found in the run cache: "
                  "did the code, data or params change while the queue ran?)", file=log)
    return {"experiments": names, "most_running": most, "retrained": retrained, "seconds": round(time.time() - t0, 1)}
