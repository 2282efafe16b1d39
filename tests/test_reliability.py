"""Broken and hostile input, killed runs: one line and a non-zero exit, never a crash or a silently
wrong number; outputs all-or-nothing; no orphaned workers. One test group per class of issue 14."""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from dftnet import stages
from dftnet.runtime import atomic
from dftnet.training import checkpoints, train as trainer
from dftnet.runtime.errors import guarded
from dftnet.config import load_params
from dftnet.data.images import MAX_PIXELS, open_image
from dftnet.runtime.errors import ConfigError, DataError, TrainingDiverged
from dftnet.eval.judge import AUJudge, load_judge, save_judge
from dftnet.reporting.report import build_timing_report
from dftnet.reporting.results import load_timing
from helpers import cli, one_line, random_dataset, tiny_run, toy_params

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------- 1. a diverging run
def test_a_diverging_run_stops_with_one_line_instead_of_a_segfault(tmp_path):
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT / 'tests')!r})
        import dataclasses, torch
        from helpers import tiny_run, random_dataset
        from dftnet.training import train as trainer
        from dftnet.runtime.errors import guarded
        run = tiny_run(epochs=20, lr=1e3, lr_critic=1e3)
        run = dataclasses.replace(run, train=dataclasses.replace(run.train, log_every=50))
        sys.exit(guarded(lambda: trainer.train(run, random_dataset(), {str(tmp_path / 'run')!r}, "cpu")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    line = one_line(out)  # before the fix: exit -11 (SIGSEGV in grid_sample's backward)
    assert "training diverged: loss" in line and "at generator step" in line and "no checkpoint was written" in line
    assert not (tmp_path / "run").exists()  # failed before its first checkpoint: nothing left behind


def test_the_warp_survives_a_non_finite_flow():
    from dftnet.nets.models import f

    Phi = torch.zeros(1, 2, 8, 8, requires_grad=True)
    bad = Phi + torch.tensor(float("nan")) * (torch.arange(64).view(1, 1, 8, 8) == 3)
    out = f(bad, torch.rand(1, 3, 8, 8))
    out.sum().backward()  # crashed the process with NaN coordinates before the guard
    assert torch.isfinite(out).all()
    good = torch.randn(1, 2, 8, 8) * 0.1
    x = torch.rand(1, 3, 8, 8)
    grid = __import__("dftnet.nets.models", fromlist=["identity_grid"]).identity_grid(8, 8) + good.permute(0, 2, 3, 1)
    plain = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    assert torch.equal(f(good, x), plain)  # finite flows: exactly the plain warp


# ---------------------------------------------------------- 2. silent wrong numbers
@pytest.mark.parametrize("edit,expected", [
    (lambda p: p["train"].update(lr=float("nan")), "train.lr: expected a finite number, got nan"),
    (lambda p: p["train"]["lambdas"].update(cond=float("inf")), "train.lambdas.cond: expected a finite number, got inf"),
    (lambda p: p.update(seeds=[0, 0]), "seeds: seed 0 is listed twice in [0, 0]"),
])
def test_params_that_would_report_wrong_numbers_are_refused(tmp_path, edit, expected):
    p = toy_params()
    edit(p)
    assert one_line(cli(tmp_path, "prepare", params=p)) == f"error: {expected}"


def test_a_duplicated_key_and_an_empty_params_file_are_refused(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("  batch_size: 8\n", "  batch_size: 8\n  batch_size: 16\n", 1)
    (tmp_path / "dup.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"dup.yaml: key 'batch_size' appears twice in one mapping \(line \d+\)"):
        load_params(tmp_path / "dup.yaml")
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="empty.yaml: the params file is empty"):
        load_params(tmp_path / "empty.yaml")


@pytest.fixture
def trained_run(tmp_path):
    run_dir = tmp_path / "runs" / "dftnet" / "seed0"
    trainer.train(tiny_run(epochs=1), random_dataset(), run_dir)
    return run_dir


def test_a_checkpoint_with_nan_weights_is_refused_not_scored(trained_run):
    path = trained_run / checkpoints.CHECKPOINT
    ckpt = torch.load(path, weights_only=True)
    key = next(k for k, v in ckpt["G"].items() if v.is_floating_point())
    ckpt["G"][key] = torch.full_like(ckpt["G"][key], float("nan"))
    torch.save(ckpt, path)
    with pytest.raises(DataError, match=f"generator weight '{key}' holds NaN or inf"):
        checkpoints.load_trained(trained_run)


# ----------------------------------------------------- 3. tracebacks -> one line
def test_foreign_missing_and_misshaped_weights_stop_with_one_line(trained_run, tmp_path):
    path = trained_run / checkpoints.CHECKPOINT
    good = torch.load(path, weights_only=True)
    cases = {
        "a judge file": (lambda: torch.save({"format": 1, "state_dict": {}}, path), "no 'config' entry"),
        "a missing weight": (lambda: torch.save({**good, "G": dict(list(good["G"].items())[1:])}, path),
                             "generator weights do not fit this network (missing"),
        "a mis-shaped weight": (lambda: torch.save({**good, "D": {k: v[:1] if v.dim() else v for k, v in good["D"].items()}}, path),
                                "critic weight"),
        "a list": (lambda: torch.save([1, 2], path), "holds a list, expected a mapping"),
    }
    for what, (write, message) in cases.items():
        write()
        with pytest.raises(DataError, match=re.escape(message)) as err:
            checkpoints.load_trained(trained_run)
        assert "\n" not in str(err.value), what


def test_a_checkpoint_as_judge_and_code_in_a_pickle_are_one_line(trained_run, tmp_path):
    with pytest.raises(DataError, match="not a judge checkpoint"):
        load_judge(trained_run / checkpoints.CHECKPOINT)

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    bad = tmp_path / "judge.pt"
    bad.write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(DataError) as err:
        load_judge(bad)
    assert "\n" not in str(err.value) and not (tmp_path / "pwned").exists()
    save_judge(tmp_path / "ok.pt", AUJudge(8, 32), __import__("dftnet.config", fromlist=["JudgeConfig"]).JudgeConfig(base_channels=8), 32)
    state = torch.load(tmp_path / "ok.pt", weights_only=True)
    state["state_dict"] = {k: v[..., :1] if v.dim() > 1 else v for k, v in state["state_dict"].items()}
    torch.save(state, tmp_path / "ok.pt")
    with pytest.raises(DataError, match="judge weight"):
        load_judge(tmp_path / "ok.pt")


def test_bad_devices_and_paths_under_a_file_are_one_line(tmp_path):
    assert "is not a device" in one_line(cli(tmp_path, "train", "dftnet", "--device", "tpu0"))
    if not torch.cuda.is_available():
        assert "is not available on this machine" in one_line(cli(tmp_path, "train", "dftnet", "--device", "cuda"))
    (tmp_path / "afile").write_text("x")
    p = toy_params()
    p["data"]["root"] = str(tmp_path / "afile" / "faces")
    line = one_line(cli(tmp_path, "prepare", params=p))
    assert str(tmp_path / "afile") in line


def test_a_full_disk_is_one_line_naming_the_file(capsys):
    def fill():
        raise OSError(errno.ENOSPC, "No space left on device", "runs/dftnet/seed0/checkpoint.pt")

    assert guarded(fill) == 2
    assert capsys.readouterr().err == "error: runs/dftnet/seed0/checkpoint.pt: No space left on device\n"

    def bug():
        raise KeyError("x")

    assert guarded(bug) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_a_corrupt_or_incomplete_timing_file_names_the_file(tmp_path):
    bad = tmp_path / "timing.json"
    bad.write_text('{"models": {"dftnet": {"b1": {"ms_per_batch": [1.0]}}}}')
    with pytest.raises(DataError, match=r"timing.json: models.dftnet.b1: missing key 'ms_per_image_median'"):
        load_timing(bad)
    bad.write_text('{"models": ')
    with pytest.raises(DataError, match="timing.json: cannot read timing JSON"):
        load_timing(bad)


def test_an_image_above_the_pixel_limit_is_refused_from_its_header(tmp_path):
    side = int(MAX_PIXELS ** 0.5) + 1
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)  # a few KB on disk, 40 MP once decoded
    with pytest.raises(DataError, match=r"bomb.png: image is \d+ x \d+ px, more than the 40,000,000 px"):
        open_image(path)


# ------------------------------------------------------ 4. all-or-nothing outputs
@pytest.fixture
def toy_project(tmp_path, monkeypatch):
    """Toy params, a prepared dataset, a judge and a trained dftnet seed 0 (seed 1 missing)."""
    monkeypatch.chdir(tmp_path)
    p = toy_params()
    p["variants"] = {"dftnet": {}}
    p["train"].update(epochs=1, curve_every=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    params = stages.load(tmp_path / "params.yaml")
    stages.prepare(params)
    stages.train_judge(params)
    stages.train_variant(params, "dftnet", "runs")
    stages.timing(params, "timing/timing.json", None, reports_dir=None)
    return params


def test_evaluate_failing_in_one_seed_leaves_the_earlier_outputs(toy_project, tmp_path):
    stages.evaluate_variant(toy_project, "dftnet")
    before = {p: p.read_bytes() for p in [*tmp_path.glob("eval/dftnet/seed*/metrics.json"), tmp_path / "metrics" / "dftnet.json"]}
    assert len(before) == 3
    (tmp_path / "runs" / "dftnet" / "seed1" / checkpoints.CHECKPOINT).unlink()
    with pytest.raises(DataError, match="seed1/checkpoint.pt: checkpoint not found"):
        stages.evaluate_variant(toy_project, "dftnet")
    assert {p: p.read_bytes() for p in before} == before
    assert not list(tmp_path.glob("**/.*staging*"))


def test_report_failing_leaves_the_previous_report(toy_project, tmp_path):
    stages.evaluate_variant(toy_project, "dftnet")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "results.md").write_text("previous report")
    (tmp_path / "runs" / "dftnet" / "seed0" / checkpoints.CHECKPOINT).unlink()  # figures need it
    with pytest.raises(DataError, match="checkpoint not found"):
        stages.report(toy_project)
    assert (tmp_path / "reports" / "results.md").read_text() == "previous report"
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["results.md"]


def test_a_killed_prepare_leaves_no_temporary_forever(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".faces.tmp-{dead.stdout.strip()}-abc"
    (stale / "images").mkdir(parents=True)
    from dftnet.data.canonical import save_dataset

    save_dataset(random_dataset(), tmp_path / "faces")
    assert not stale.exists() and (tmp_path / "faces" / "meta.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["faces"]


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    (tmp_path / "a.json").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.replacing(tmp_path / "a.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert (tmp_path / "a.json").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_failed_write_into_a_new_folder_leaves_no_folder_it_made(tmp_path):
    (tmp_path / "kept").mkdir()
    for path in (tmp_path / "new" / "deeper" / "a.json", tmp_path / "kept" / "a.json"):
        with pytest.raises(RuntimeError):
            with atomic.replacing(path) as tmp:
                tmp.write_text("half")
                raise RuntimeError("the writer failed")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not list((tmp_path / "kept").iterdir())
    atomic.write_text(tmp_path / "new" / "a.json", "{}")
    assert (tmp_path / "new" / "a.json").read_text() == "{}"


def test_a_failed_staged_output_leaves_no_folder_it_made_and_keeps_those_it_found(tmp_path):
    (tmp_path / "kept").mkdir()
    for dest in (tmp_path / "new" / "deeper" / "eval", tmp_path / "kept" / "eval"):
        with pytest.raises(RuntimeError):
            with atomic.staged(dest) as staging:
                (staging / "seed0").mkdir()
                (staging / "seed0" / "metrics.json").write_text("{}")
                raise RuntimeError("a seed failed")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not list((tmp_path / "kept").iterdir())
    with atomic.staged(tmp_path / "new" / "eval") as staging:
        (staging / "a.json").write_text("{}")
    assert (tmp_path / "new" / "eval" / "a.json").read_text() == "{}"


# ------------------------------------------------------------- 5. orphans, locks
def test_a_second_writer_into_a_run_folder_stops(tmp_path):
    with atomic.exclusive(tmp_path / "run", "training"):
        with pytest.raises(DataError, match="run: another process is already training here"):
            trainer.train(tiny_run(epochs=1), random_dataset(), tmp_path / "run")
    assert not (tmp_path / "run" / checkpoints.CHECKPOINT).exists()


@pytest.mark.slow
def test_training_workers_die_with_their_parent(tmp_path):
    p = toy_params()
    p["train"].update(epochs=500, curve_every=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    assert subprocess.run([sys.executable, "-m", "dftnet.cli", "--params", "params.yaml", "prepare"], cwd=tmp_path,
                          env=env).returncode == 0
    parent = subprocess.Popen([sys.executable, "-m", "dftnet.cli", "--params", "params.yaml", "train", "dftnet"],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not all((tmp_path / "runs" / "dftnet" / f"seed{s}" / "log.csv").exists() for s in (0, 1)):
            assert time.time() < deadline and parent.poll() is None, "workers did not start"
            time.sleep(0.5)
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        assert len(children) >= 2
        parent.send_signal(signal.SIGKILL)  # as a CI timeout or the OOM killer would
        parent.wait()
        deadline = time.time() + 20
        while any(Path(f"/proc/{c}").exists() and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2]
                  for c in children if Path(f"/proc/{c}/stat").exists()):
            assert time.time() < deadline, "training workers outlived their parent"
            time.sleep(0.2)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_corrupt_training_log_stops_the_resume_naming_the_line(tmp_path):
    ds, run = random_dataset(), tiny_run(epochs=2)
    trainer.train(run, ds, tmp_path, epochs_this_session=1)
    log = tmp_path / trainer.LOG
    log.write_text(log.read_text() + "garbage,row\n")
    with pytest.raises(DataError, match=r"log.csv line \d+: step 'garbage' is not a step number"):
        trainer.train(run, ds, tmp_path)
    assert (tmp_path / checkpoints.CHECKPOINT).exists()  # the run stays resumable once the log is fixed


def test_a_diverging_judge_stops_before_writing_anything(tmp_path, monkeypatch):
    from dftnet.eval import judge as judge_module

    monkeypatch.chdir(tmp_path)
    p = toy_params()
    p["judge"].update(lr=1e9)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    params = stages.load(tmp_path / "params.yaml")
    stages.prepare(params)
    monkeypatch.setattr(judge_module.torch.nn.functional, "mse_loss", lambda a, b: (a - b).pow(2).mean() * float("nan"))
    with pytest.raises(TrainingDiverged,
                       match="judge: training diverged: its loss is nan in epoch 0"):
        stages.train_judge(params)
    assert not (tmp_path / "judge").exists() or not any((tmp_path / "judge").iterdir())
    assert not (tmp_path / "metrics" / "judge.json").exists()


def test_a_metrics_file_with_a_non_number_names_the_file_and_key(tmp_path):
    from dftnet.eval.schema import METRICS
    from dftnet.reporting.report import build_report

    path = tmp_path / "metrics.json"
    summary = dict.fromkeys(METRICS)
    summary["au_mae"] = "0.5"
    path.write_text(json.dumps({"variant": "dftnet", "seed": 0, "summary": summary, "protocol": {"n_pairs": 3}}))
    with pytest.raises(DataError, match=r"metrics.json: summary.au_mae is '0.5', expected a number or null"):
        build_report([path], None, tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


# ------------------------------------------- the last failure classes (reliability issue)
def test_a_libraries_warning_never_joins_our_one_line(tmp_path, capsys):
    import warnings as w

    side = 11_000  # 121 MP: between Pillow's warning (89 MP) and error (179 MP) limits
    path = tmp_path / "huge.png"
    Image.new("1", (side, side)).save(path)
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        with pytest.raises(DataError, match=r"huge.png: image is 11000 x 11000 px, more than"):
            open_image(path)
    assert not caught  # our header check covers Pillow's DecompressionBombWarning: silenced at the source

    def warns_then_fails():
        w.warn("a library's advice, path/to/site-packages/lib.py", stacklevel=1)
        raise DataError("photo.jpg: the one thing that went wrong")

    assert guarded(warns_then_fails) == 2
    assert capsys.readouterr().err.splitlines() == ["error: photo.jpg: the one thing that went wrong"]
    assert guarded(lambda: w.warn("kept, on one line", stacklevel=1)) == 0
    assert capsys.readouterr().err.splitlines() == ["warning: UserWarning: kept, on one line"]


def test_a_params_error_found_when_training_starts_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = toy_params()
    p["variants"] = {"dftnet": {"model": {"critic_layers": 6}}}  # 32 px cannot halve 6 times
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    out = subprocess.run([sys.executable, "-m", "dftnet.cli", "--params", "params.yaml", "train", "dftnet"],
                         cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "model.critic_layers" in one_line(out)
    assert not (tmp_path / "runs").exists()


def test_a_full_disk_while_writing_a_checkpoint_is_named_not_called_a_bug(tmp_path, monkeypatch, capsys):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"the last good checkpoint")

    def torch_save_on_a_full_disk(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 2048")

    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _: type("U", (), {"free": 0})())
    assert guarded(lambda: atomic.write_with(path, torch_save_on_a_full_disk)) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: no space left on device (RuntimeError while writing")
    assert path.read_bytes() == b"the last good checkpoint" and [q.name for q in tmp_path.iterdir()] == [path.name]
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _: type("U", (), {"free": 2**40})())
    with pytest.raises(RuntimeError, match="unexpected pos"):  # space left: not a full disk, the error stands
        atomic.write_with(path, torch_save_on_a_full_disk)


def test_a_report_over_a_variant_the_timing_does_not_know_says_so(toy_project, tmp_path):
    p = yaml.safe_load((tmp_path / "params.yaml").read_text())
    p["variants"]["no_skip"] = {"model": {"skip": False}}  # added after the timing stage ran
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    params = stages.load(tmp_path / "params.yaml")
    stages.train_variant(params, "no_skip", "runs")
    for v in ("dftnet", "no_skip"):
        stages.evaluate_variant(params, v)
    stages.report(params)  # reads no timing at all
    assert "no_skip" in (tmp_path / "reports" / "results.md").read_text()
    build_timing_report(Path("timing/timing.json"), list(params.variants), Path("reports"))
    timing = (tmp_path / "reports" / "timing.md").read_text()
    assert "n/a: not timed (timing/timing.json has no no_skip)" in timing
