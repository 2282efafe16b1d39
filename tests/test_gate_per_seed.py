"""benchmarks/gate_per_seed.py: the gate per training run, on hand-built metrics files."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from dftnet.runtime.errors import DataError

spec = importlib.util.spec_from_file_location("gate_per_seed", Path(__file__).resolve().parents[1] / "benchmarks" / "gate_per_seed.py")
gate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gate)


def metrics(edit, raise_, mp=False, n=40):
    """``n`` pairs of ``n // 2`` people; erasing scores 0.6; the edit ``edit`` +- 0.05 and raise ``raise_`` +- 0.1."""
    wobble = np.tile([-1.0, 1.0], n // 2)
    au = list(edit + 0.05 * wobble)
    rz = list(raise_ + 0.1 * wobble[::-1])
    key = "_mp" if mp else ""
    per_pair = {f"au_mae{key}": au, f"au_mae{key}_neutral": [0.6] * n, f"au_raise{key}": rz}
    if not mp:
        per_pair["au_mae_mp"] = [float("nan")] * n  # synthetic data: no MediaPipe reading
    return {"per_pair": per_pair, "pairs": {"source_identity": [f"p{i // 2}" for i in range(n)]}}


def test_reader_follows_the_data_and_each_run_gets_its_own_verdict():
    assert gate.reader(metrics(0.5, 0.4, mp=True)) == "_mp" and gate.reader(metrics(0.5, 0.4)) == ""
    rows = gate.table({"m": {0: metrics(0.5, 0.4, mp=True), 1: metrics(0.7, 0.4, mp=True)}})
    seed0, seed1, pooled = rows[2:]
    assert "| m | 0 | 0.500 | 0.600 | -0.100 [" in seed0 and seed0.endswith("| edits |")
    assert "| m | 1 | 0.700 |" in seed1 and seed1.endswith("| did not pass |")  # worse than erasing
    # the pooled row is the claims' interval over both seeds: mean -0.0, two seeds that disagree
    d = np.stack([gate.gate_values(metrics(e, 0.4, mp=True))[0] for e in (0.5, 0.7)])
    ci = gate.interval(d, [f"p{i // 2}" for i in range(40)])
    assert f"| m | pooled (2) | | | {gate.fmt(ci)}" in pooled and pooled.endswith("| did not pass |")


def test_a_run_that_does_not_raise_does_not_pass():
    rows = gate.table({"m": {0: metrics(0.4, 0.0)}})
    assert len(rows) == 3 and rows[2].endswith("| did not pass |")  # beats erasing, but raises nothing


def test_bad_metrics_file_stops_with_its_name(tmp_path):
    run = tmp_path / "eval" / "m" / "seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"per_pair": {}}))
    with pytest.raises(DataError, match="seed0/metrics.json: not an evaluate metrics file"):
        gate.main(["--eval", str(tmp_path / "eval")])
    (run / "metrics.json").write_text(json.dumps(metrics(0.5, 0.4)))
    out = tmp_path / "gate.md"
    assert gate.main(["--eval", str(tmp_path / "eval"), "--out", str(out)]) == 0
    assert "| m | 0 | 0.500 | 0.600 |" in out.read_text()
