"""End to end: `dvc repro` of the real dvc.yaml at toy size, in a scratch copy of the project."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")


def toy_params() -> dict:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["data"]["image_size"] = 32
    p["data"]["synthetic"].update(n_train_identities=4, n_test_identities=3, images_per_identity=4,
                                  pairs_per_test_identity=2)
    p["model"].update(base_channels=4, n_res_blocks=1, critic_channels=8, critic_layers=3)
    p["train"].update(epochs=2, decay_epochs=1, batch_size=4, n_critic=2, log_every=1, checkpoint_every=1,
                      curve_every=1, curve_pairs=4)
    p["seeds"] = [0, 1]
    p["variants"] = {k: p["variants"][k] for k in ("dftnet", "ganimation", "warp_only")}
    p["judge"].update(epochs=2, base_channels=8)
    p["eval"].update(bootstrap=50, timing_runs=5, timing_warmup=1, timing_batch_sizes=[1, 4], identity=False)
    return p


@pytest.mark.slow
@pytest.mark.skipif(not DVC.exists(), reason="dvc not installed beside this python")
def test_dvc_repro_at_toy_size(tmp_path):
    for item in ("dvc.yaml", "dftnet", "baselines", "pipelines"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(toy_params()))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    for cmd in (["git", "init", "-q"], [str(DVC), "init", "-q"], [str(DVC), "repro"]):
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = pd.read_csv(tmp_path / "reports" / "results.csv")
    assert set(results["variant"]) == {"dftnet", "ganimation", "warp_only"} and len(results) == 6
    assert results["au_mae"].notna().all() and results["ms_per_image_b1"].gt(0).all()
    assert results["l1_gt_source"].notna().all() and results["ssim_gt_mouth_source"].notna().all()  # paired floors
    assert results["fid"].isna().all()  # no Inception weights offline: null, never a substitute
    claims = (tmp_path / "reports" / "claims.md").read_text()
    assert "not measurable here" in claims
    curve = pd.read_csv(tmp_path / "logs" / "dftnet_curve.csv")  # the learning curve, mean over seeds
    assert {"step", "au_mae", "au_mae_source", "au_mae_critic"} <= set(curve.columns) and curve["step"].iloc[0] == 0
    for fig in ("fig3_eyelids.png", "fig4_intermediate.png", "fig5_interpolation.png", "training_curves.png",
                "learning_curves.png"):
        assert (tmp_path / "reports" / "figures" / fig).stat().st_size > 1000, fig
    metrics = json.loads((tmp_path / "metrics" / "dftnet.json").read_text())
    assert set(metrics) == {"seed0", "seed1"}
    # Nothing to do the second time: every stage is up to date.
    again = subprocess.run([str(DVC), "repro"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "didn't change" in again.stdout + again.stderr
