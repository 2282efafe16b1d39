"""The trainer: schedule, lambda handling, every variant runs, SIGKILL-and-resume equality, NaN stop."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from dftnet.training import checkpoints, train as trainer
from dftnet.nets import losses
from dftnet.config import LambdaConfig, load_params, run_config_from_dict
from dftnet.runtime.errors import DataError, TrainingDiverged
from helpers import random_dataset, tiny_run

ROOT = Path(__file__).resolve().parents[1]


def test_lr_schedule_is_constant_then_linear():
    factors = [trainer.lr_factor(e, epochs=30, decay_epochs=10) for e in range(30)]
    assert factors[:21] == [1.0] * 21
    assert factors[21:] == pytest.approx([(30 - e) / 10 for e in range(21, 30)])
    assert factors[-1] == pytest.approx(0.1)


def test_weighted_total_applies_each_lambda_once_and_cond_per_batch():
    lam = LambdaConfig(gp=10, adv=1, cond=4000, cyc=10, tv=1e-4, att=1, att_tv=0)
    one = torch.tensor(1.0)
    terms = {"d_adv": one, "d_gp": one, "d_cond": one}
    assert trainer.weighted_total(terms, lam, batch_size=8).item() == pytest.approx(1 + 10 + 4000 / 8)
    g = {"g_cyc": one, "g_tv": one, "g_att": one}
    assert trainer.weighted_total(g, lam, batch_size=8).item() == pytest.approx(10 + 1e-4 + 1)


@pytest.mark.parametrize("variant", ["dftnet", "ganimation", "warp_only", "no_skip", "no_att_loss", "dftnet_clean",
                                     "ganimation_clean"])
def test_every_variant_trains_and_logs(tmp_path, variant):
    clock = tmp_path / "runs.wall_clock" / variant / "seed0.json"
    summary = trainer.train(tiny_run(variant), random_dataset(), tmp_path / "run", wall_clock=clock)
    assert summary["epochs"] == 2 and summary["generator_steps"] == 4
    tmp_path = tmp_path / "run"
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    assert header == list(trainer.LOG_COLUMNS) and "images_per_s" not in header  # the clock stays out
    written = json.loads((tmp_path / "train_summary.json").read_text())
    assert not set(trainer.WALL_CLOCK_KEYS) & set(written)
    assert set(json.loads(clock.read_text())) == set(trainer.WALL_CLOCK_KEYS)
    assert summary["train_seconds_this_session"] > 0 and set(summary["images_per_s_by_step"]) == {"1", "2", "3", "4"}
    rows = [dict(zip(header, line.split(","))) for line in (tmp_path / "log.csv").read_text().splitlines()[1:]]
    assert all(r["g_flow"] for r in rows) == (variant == "dftnet_clean")  # the flow term only where its lambda is set
    G, D, run = checkpoints.load_trained(tmp_path)
    assert run.variant == variant and not G.training


def test_a_finished_run_re_entered_keeps_its_wall_clock(tmp_path):
    clock = tmp_path / "runs.wall_clock" / "dftnet" / "seed0.json"
    trainer.train(tiny_run("dftnet"), random_dataset(), tmp_path / "run", wall_clock=clock)
    recorded = clock.read_text()
    assert json.loads(recorded)["train_seconds_this_session"] > 0
    again = trainer.train(tiny_run("dftnet"), random_dataset(), tmp_path / "run", wall_clock=clock)
    assert again["generator_steps"] == 4 and clock.read_text() == recorded  # nothing trained: the record stays


def test_a_run_trained_over_sittings_keeps_one_wall_clock_record(tmp_path):
    clock, ds, run = tmp_path / "runs.wall_clock" / "dftnet" / "seed0.json", random_dataset(), tiny_run(epochs=3)
    trainer.train(run, ds, tmp_path / "run", epochs_this_session=1, wall_clock=clock)
    first = json.loads(clock.read_text())
    assert first["through_epoch"] == 1 and first["complete"] and [s["epochs"] for s in first["sittings"]] == [[0, 1]]
    trainer.train(run, ds, tmp_path / "run", wall_clock=clock)
    both = json.loads(clock.read_text())
    assert both["through_epoch"] == 3 and both["complete"] and [s["epochs"] for s in both["sittings"]] == [[0, 1], [1, 3]]
    assert both["sittings"][0] == first["sittings"][0]
    assert both["train_seconds"] == pytest.approx(sum(s["seconds"] for s in both["sittings"]), abs=0.02)
    assert both["train_seconds"] > both["train_seconds_this_session"] > 0
    assert set(both["images_per_s_by_step"]) == {str(k) for k in range(1, 7)}  # every step of both sittings


def test_a_wall_clock_record_gone_missing_marks_the_run_incomplete(tmp_path):
    clock, ds, run = tmp_path / "runs.wall_clock" / "dftnet" / "seed0.json", random_dataset(), tiny_run(epochs=3)
    trainer.train(run, ds, tmp_path / "run", epochs_this_session=1, wall_clock=clock)
    clock.unlink()  # e.g. killed between the checkpoint and the record, or another machine's folder
    trainer.train(run, ds, tmp_path / "run", wall_clock=clock)
    record = json.loads(clock.read_text())
    assert record["through_epoch"] == 3 and not record["complete"] and [s["epochs"] for s in record["sittings"]] == [[1, 3]]


def test_a_sitting_stopped_between_checkpoints_still_saves_its_epochs(tmp_path):
    ds = random_dataset()
    run = tiny_run(epochs=4)
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, checkpoint_every=3))
    trainer.train(run, ds, tmp_path, epochs_this_session=1)
    assert torch.load(tmp_path / trainer.CHECKPOINT, weights_only=True)["epoch"] == 1  # not lost to the next sitting


def test_a_deadline_stops_after_the_epoch_it_passes_and_the_run_goes_on_exactly(tmp_path):
    ds, run = random_dataset(), tiny_run(epochs=3)
    trainer.train(run, ds, tmp_path / "straight")
    assert trainer.train(run, ds, tmp_path / "split", deadline=time.time()) == {}  # stopped, not finished
    assert torch.load(tmp_path / "split" / trainer.CHECKPOINT, weights_only=True)["epoch"] == 1
    assert trainer.train(run, ds, tmp_path / "split")["epochs"] == 3
    a = torch.load(tmp_path / "straight" / trainer.CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "split" / trainer.CHECKPOINT, weights_only=True)
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])


def test_a_stop_waits_for_a_whole_log_row_so_the_resumed_log_is_the_unbroken_one(tmp_path):
    ds, run = random_dataset(), tiny_run(epochs=5)  # 2 generator steps an epoch
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, log_every=3, checkpoint_every=10))
    trainer.train(run, ds, tmp_path / "straight")
    trainer.train(run, ds, tmp_path / "split", deadline=time.time())  # past the limit from epoch 1 on
    stopped = torch.load(tmp_path / "split" / trainer.CHECKPOINT, weights_only=True)
    assert stopped["epoch"] == 3 and stopped["step"] == 6  # epochs 1-2 end inside a 3-step log row
    trainer.train(run, ds, tmp_path / "split")
    assert (tmp_path / "split" / "log.csv").read_bytes() == (tmp_path / "straight" / "log.csv").read_bytes()


def test_a_sitting_that_reaches_the_last_epoch_finishes_the_run(tmp_path):
    summary = trainer.train(tiny_run(epochs=2), random_dataset(), tmp_path, epochs_this_session=2)
    assert summary["epochs"] == 2 and (tmp_path / "train_summary.json").exists()


def test_a_wall_clock_record_ahead_of_its_checkpoint_does_not_count_twice(tmp_path):
    clock, ds, run = tmp_path / "runs.wall_clock" / "dftnet" / "seed0.json", random_dataset(), tiny_run(epochs=3)
    trainer.train(run, ds, tmp_path / "run", epochs_this_session=1, wall_clock=clock)
    record = json.loads(clock.read_text())
    ahead = {**record, "through_epoch": 2, "sittings": record["sittings"] + [{"epochs": [1, 2], "seconds": 99.0}]}
    clock.write_text(json.dumps(ahead))  # e.g. a record kept from a later sitting whose checkpoint was lost
    trainer.train(run, ds, tmp_path / "run", wall_clock=clock)
    after = json.loads(clock.read_text())
    assert [s["epochs"] for s in after["sittings"]] == [[0, 1], [1, 3]] and not after["complete"]
    assert after["train_seconds"] < 99.0


def test_zero_lambda_skips_the_computation(tmp_path):
    run = tiny_run(lambdas=LambdaConfig(cyc=0.0, att=0.0, tv=0.0, gp=0.0))
    state = trainer.build_state(run, torch.device("cpu"))
    calls = []
    state.G.register_forward_hook(lambda *a: calls.append(1))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 17)
    terms = trainer.generator_terms(state, x, y, y, run.train.lambdas)
    assert set(terms) == {"g_adv", "g_cond"} and len(calls) == 1  # no cycle pass
    assert "d_gp" not in trainer.critic_terms(state, x, y, y, run.train.lambdas)


@pytest.mark.parametrize("variant", ["dftnet", "ganimation"])
def test_the_identity_remedy_asks_the_source_back_and_logs_only_when_on(tmp_path, variant):
    run = tiny_run(variant, epochs=1, lambdas=LambdaConfig(cyc=0.0, att=0.0, tv=0.0, gp=0.0, idt=2.0))
    state = trainer.build_state(run, torch.device("cpu"))
    x, y_s, y_t = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 17), torch.rand(2, 17)
    terms = trainer.generator_terms(state, x, y_s, y_t, run.train.lambdas)
    with torch.no_grad():
        expected = (x - state.G(x, y_s).image).abs().mean()
    assert set(terms) == {"g_adv", "g_cond", "g_idt"} and torch.equal(terms["g_idt"].detach(), expected)
    base = trainer.weighted_total({k: v for k, v in terms.items() if k != "g_idt"}, run.train.lambdas, 4)
    assert torch.allclose(trainer.weighted_total(terms, run.train.lambdas, 4), base + 2.0 * expected)
    trainer.train(run, random_dataset(), tmp_path / "on")
    header = (tmp_path / "on" / "log.csv").read_text().splitlines()[0].split(",")
    assert header == list(trainer.LOG_COLUMNS) + ["g_idt"]  # off (every other test): the papers' columns only


def test_resume_after_stop_equals_uninterrupted(tmp_path):
    ds, run = random_dataset(), tiny_run(epochs=3)
    trainer.train(run, ds, tmp_path / "straight")
    trainer.train(run, ds, tmp_path / "split", epochs_this_session=1)
    trainer.train(run, ds, tmp_path / "split")
    a = torch.load(tmp_path / "straight" / trainer.CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "split" / trainer.CHECKPOINT, weights_only=True)
    for net in ("G", "D"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k}"


def test_the_critic_warm_up_fits_d_c_leaves_g_and_is_not_repeated_on_resume(tmp_path):
    ds, run = random_dataset(), tiny_run(epochs=2, critic_warmup=40, lr_critic=1e-3)
    state = trainer.build_state(run, torch.device("cpu"))
    g0 = {k: v.clone() for k, v in state.G.state_dict().items()}
    images = ds.images[ds.train_idx]
    aus = trainer.aus_to_model(ds.aus[ds.train_idx])
    x = trainer.to_model(images)

    def d_cond() -> float:
        with torch.no_grad():
            return float(losses.au_condition_loss(state.D(x)[1], aus))

    before = d_cond()
    last = trainer.warm_up_critic(state, images, aus, run.train, trainer.World())
    assert last is not None and d_cond() < 0.5 * before  # D_C learned the training faces' AUs
    assert all(torch.equal(v, state.G.state_dict()[k]) for k, v in g0.items())  # G untouched
    assert state.step == 0 and "critic_warmup" not in tiny_run().to_dict()["train"]  # off: the old records' bytes
    trainer.train(run, ds, tmp_path / "straight")
    trainer.train(run, ds, tmp_path / "split", epochs_this_session=1)
    trainer.train(run, ds, tmp_path / "split")  # resumed at epoch 1: no second warm-up
    a = torch.load(tmp_path / "straight" / trainer.CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "split" / trainer.CHECKPOINT, weights_only=True)
    assert all(torch.equal(a["D"][k], b["D"][k]) for k in a["D"])


def test_sigkill_and_resume_equals_uninterrupted(tmp_path):
    """Kill a training process with SIGKILL once its first checkpoint exists, resume, compare.
    The job waits after each checkpoint, so the kill lands after epoch 1 however loaded the machine
    (a tiny epoch takes milliseconds: without the wait a busy machine let it finish first)."""
    ds, run = random_dataset(n=40), tiny_run(epochs=4)
    torch.save({"images": ds.images, "aus": ds.aus}, tmp_path / "ds.pt")
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time, torch
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from helpers import random_dataset, tiny_run
        from dftnet.training import train as trainer
        save = trainer.save_checkpoint
        trainer.save_checkpoint = lambda *a, **k: (save(*a, **k), time.sleep(60))
        torch.set_num_threads(1)
        trainer.train(tiny_run(epochs=4), random_dataset(n=40), sys.argv[1])
    """))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed")], env=env)
    ckpt = tmp_path / "killed" / trainer.CHECKPOINT
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "the job ended before writing a checkpoint"
    killed_at = torch.load(ckpt, weights_only=True)["epoch"]
    threads = torch.get_num_threads()  # float sums split over threads round differently: one thread, as the job
    torch.set_num_threads(1)
    try:
        trainer.train(run, ds, tmp_path / "killed")
        trainer.train(run, ds, tmp_path / "straight")
    finally:
        torch.set_num_threads(threads)
    a = torch.load(tmp_path / "straight" / trainer.CHECKPOINT, weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert killed_at == 1 and b["epoch"] == 4 and a["step"] == b["step"]
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])
    assert all(torch.equal(a["opt_D"]["state"][k]["exp_avg"], b["opt_D"]["state"][k]["exp_avg"]) for k in a["opt_D"]["state"])


def test_nan_loss_stops_naming_the_term_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    ds, run = random_dataset(), tiny_run(epochs=3)
    trainer.train(run, ds, tmp_path, epochs_this_session=1)
    good = torch.load(tmp_path / trainer.CHECKPOINT, weights_only=True)
    monkeypatch.setattr(losses, "cycle_loss", lambda x, y: torch.tensor(float("nan")))
    with pytest.raises(TrainingDiverged, match="g_cyc"):
        trainer.train(run, ds, tmp_path)
    kept = torch.load(tmp_path / trainer.CHECKPOINT, weights_only=True)
    assert kept["epoch"] == good["epoch"] == 1


def test_checkpoints_refuse_code_and_other_params(tmp_path):
    bad = tmp_path / trainer.CHECKPOINT
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    bad.write_bytes(pickle.dumps({"G": Evil()}))
    with pytest.raises(DataError, match="checkpoint"):
        checkpoints.read_checkpoint(bad)
    assert not (tmp_path / "pwned").exists()
    run = tiny_run(epochs=1)
    trainer.train(run, random_dataset(), tmp_path / "r")
    with pytest.raises(DataError, match="other params"):
        trainer.train(tiny_run(epochs=2), random_dataset(), tmp_path / "r")


# ------------------------------------------------------------- learning curve
def dataset_with_pairs(n=24, size=32):
    from dftnet.data.dataset import EvalPairs

    ds = random_dataset(n, size)
    ds.test_ids, ds.val_ids = ds.test_ids[:4], ds.test_ids[4:]

    def pairs(ids, tag):
        src = ids * 3
        return EvalPairs(pair_ids=[f"{tag}{k}" for k in range(len(src))], source_ids=src, target_ids=[""] * len(src),
                         target_aus=torch.rand(len(src), 17, generator=torch.Generator().manual_seed(1)) * 5)

    ds.pairs, ds.val_pairs = pairs(ds.test_ids, "p"), pairs(ds.val_ids, "v")
    return ds


def tiny_judge(size=32):
    from dftnet.eval.judge import AUJudge

    torch.manual_seed(0)
    return AUJudge(base_channels=4, image_size=size).eval()


def read_curve(path):
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


def test_learning_curve_logs_judge_floor_and_critic_without_changing_training(tmp_path):
    from dftnet.training.curve import CURVE, CURVE_COLUMNS

    ds, judge = dataset_with_pairs(), tiny_judge()
    run = tiny_run(epochs=3, curve_every=2, curve_pairs=10)
    trainer.train(run, ds, tmp_path / "with", judge=judge)
    rows = read_curve(tmp_path / "with" / CURVE)
    assert list(rows[0]) == list(CURVE_COLUMNS)
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(0, steps[-1] + 1, 2)) and steps[-1] >= 4  # a point at 0 and every 2 steps
    assert len({r["au_mae_source"] for r in rows}) == 1                   # the floor is constant
    assert {r["n_pairs"] for r in rows} == {"10"}
    for r in rows:
        assert float(r["ratio"]) == pytest.approx(float(r["au_mae"]) / float(r["au_mae_source"]), rel=1e-4)
        assert float(r["au_mae_critic"]) >= 0
    assert len({r["au_mae"] for r in rows}) > 1                            # the edits change as G learns
    # the judge only reads: the trained weights equal a run without a curve
    trainer.train(run, ds, tmp_path / "without")
    a = torch.load(tmp_path / "with" / trainer.CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "without" / trainer.CHECKPOINT, weights_only=True)
    for k in a["G"]:
        assert torch.equal(a["G"][k], b["G"][k]), k


def test_learning_curve_resumes_without_duplicate_rows(tmp_path):
    from dftnet.training.curve import CURVE

    ds, judge = dataset_with_pairs(), tiny_judge()
    run = tiny_run(epochs=3, curve_every=1, curve_pairs=6)
    trainer.train(run, ds, tmp_path / "straight", judge=judge)
    trainer.train(run, ds, tmp_path / "split", epochs_this_session=1, judge=judge)
    trainer.train(run, ds, tmp_path / "split", judge=judge)
    assert read_curve(tmp_path / "split" / CURVE) == read_curve(tmp_path / "straight" / CURVE)


def test_critic_has_its_own_learning_rate():
    state = trainer.build_state(tiny_run(lr=2e-4, lr_critic=4e-4), torch.device("cpu"))
    assert state.opt_G.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert state.opt_D.param_groups[0]["lr"] == pytest.approx(4e-4)


def test_thread_plan_shares_cores_between_single_thread_jobs_and_never_changes_a_jobs_threads():
    from dftnet.stages import thread_plan

    assert thread_plan(2, 2) == 2
    assert thread_plan(3, 2) == 3  # one-thread jobs share the cores' time; none gets a second thread
    assert thread_plan(1, 2) == 1
    assert thread_plan(9, 4) == 8  # at most two per core
    assert thread_plan(3, 1) == 2
    assert thread_plan(3, 4, threads_per_job=2) == 2
    assert thread_plan(3, 1, threads_per_job=2) == 1  # fewer cores than a job's threads: still one job


def test_threads_honour_omp_num_threads(monkeypatch):
    from dftnet.stages import threads_allowed

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads_allowed() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads_allowed() == (os.cpu_count() or 1)


def test_training_with_a_curve_but_no_judge_stops_naming_the_file(tmp_path, monkeypatch):
    from dftnet import stages

    params = load_params(ROOT / "params.yaml")
    monkeypatch.setattr(stages, "dataset", lambda p: random_dataset())
    with pytest.raises(DataError, match="judge.pt: the AU judge that draws the learning curve is missing"):
        stages._train_one(params, "dftnet", 0, tmp_path / "run", "cpu", 1, tmp_path / "judge.pt")
    assert not (tmp_path / "run" / trainer.CHECKPOINT).exists()


def test_a_learning_curve_without_validation_pairs_stops_and_leaves_no_run_folder(tmp_path):
    ds = dataset_with_pairs()
    ds.val_ids, ds.val_pairs = None, None
    with pytest.raises(DataError, match=r"no validation pairs .*data\.folder\.val_ids.*train\.curve_every: 0"):
        trainer.train(tiny_run(epochs=1, curve_every=1, curve_pairs=4), ds, tmp_path / "run", judge=tiny_judge())
    assert not (tmp_path / "run").exists()


def test_a_session_of_n_epochs_stops_resumable_and_the_same_command_goes_on(tmp_path):
    """``dftnet train --epochs-this-session N``: for a machine lent for a limited time."""
    from helpers import cli, one_line, toy_params

    p = toy_params()
    p["variants"] = {"dftnet": {}}
    p["seeds"], p["train"]["curve_every"] = [0], 0
    assert cli(tmp_path, "prepare", params=p).returncode == 0
    assert "--epochs-this-session: 0 must be at least 1" in one_line(cli(tmp_path, "train", "dftnet", "--epochs-this-session", "0"))
    assert not (tmp_path / "runs").exists()
    first = cli(tmp_path, "train", "dftnet", "--epochs-this-session", "1")
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "runs" / "dftnet" / "seed0"
    assert checkpoints.read_checkpoint(run / checkpoints.CHECKPOINT)["epoch"] == 1
    assert not (run / "train_summary.json").exists()  # not finished
    again = cli(tmp_path, "train", "dftnet")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run / "train_summary.json").read_text())["epochs"] == 2
    assert (tmp_path / "runs.wall_clock" / "dftnet" / "seed0.json").is_file()


def test_a_later_remedy_is_recorded_only_when_on():
    off, on = tiny_run(), tiny_run(lambdas=LambdaConfig(idt=1.0))
    assert "idt" not in off.to_dict()["train"]["lambdas"] and on.to_dict()["train"]["lambdas"]["idt"] == 1.0
    assert run_config_from_dict(off.to_dict()) == off and run_config_from_dict(on.to_dict()) == on
    gated = dataclasses.replace(off, model=dataclasses.replace(off.model, change_deadzone=0.02))
    assert "change_deadzone" not in off.to_dict()["model"] and gated.to_dict()["model"]["change_deadzone"] == 0.02
    assert run_config_from_dict(gated.to_dict()) == gated


def trained_alike(off, on, ds, tmp_path):
    """Runs ``off`` and ``on`` trained on ``ds``: their G and D equal bit for bit (a setting that
    acts only once trained), returned as the two trained generators in eval mode."""
    trainer.train(off, ds, tmp_path / "off")
    trainer.train(on, ds, tmp_path / "on")
    a = torch.load(tmp_path / "off" / trainer.CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "on" / trainer.CHECKPOINT, weights_only=True)
    for net in ("G", "D"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    return checkpoints.load_trained(tmp_path / "off")[0], checkpoints.load_trained(tmp_path / "on")[0]


def test_the_eval_dead_zone_leaves_training_bit_for_bit_and_acts_only_once_trained(tmp_path):
    from dftnet.nets.models import shrink_flow

    ds, off = random_dataset(), tiny_run(epochs=2)
    on = dataclasses.replace(off, model=dataclasses.replace(off.model, flow_deadzone_eval=1.0))
    assert "flow_deadzone_eval" not in off.to_dict()["model"] and run_config_from_dict(on.to_dict()) == on
    G_off, G_on = trained_alike(off, on, ds, tmp_path)
    x, aus = ds.images[:4].float() / 127.5 - 1, ds.aus[:4].float()
    with torch.no_grad():
        Phi = G_off(x, aus).parts["Phi"]
        assert Phi.abs().max() > 0  # the shrink has something to act on
        assert torch.equal(G_on(x, aus).parts["Phi"], shrink_flow(Phi, 1.0))  # eval mode: the 1 px zone
        G_off.train(), G_on.train()
        assert torch.equal(G_on(x, aus).image, G_off(x, aus).image)  # training mode: flow_deadzone, as trained


@pytest.mark.parametrize("variant", ["dftnet", "ganimation"])
def test_the_once_trained_gates_leave_training_bit_for_bit_and_act_only_once_trained(tmp_path, variant):
    from dftnet.nets.blocks import gate_small_changes
    from dftnet.nets.models import gate_flow

    ds, off = random_dataset(), tiny_run(variant, epochs=2)
    gates = {"change_deadzone_eval": 0.03, **({"flow_gate_eval": 0.5} if variant == "dftnet" else {})}
    on = dataclasses.replace(off, model=dataclasses.replace(off.model, **gates))
    assert not set(gates) & set(off.to_dict()["model"]) and run_config_from_dict(on.to_dict()) == on
    G_off, G_on = trained_alike(off, on, ds, tmp_path)
    x, aus = ds.images[:4].float() / 127.5 - 1, ds.aus[:4].float()
    with torch.no_grad():
        plain, gated = G_off(x, aus), G_on(x, aus)
        before = plain.image  # the edit before the change gate: GANimation's as trained
        if variant == "dftnet":  # DFT-Net's with the flow gate alone
            assert torch.equal(gated.parts["Phi"], gate_flow(plain.parts["Phi"], 0.5))
            G_off.flow_gate_eval = 0.5
            before = G_off(x, aus).image
            G_off.flow_gate_eval = 0.0
        assert torch.equal(gated.image, gate_small_changes(before, x, 0.03))
        small = (before - x).abs().amax(1) / 2 <= 0.03
        assert small.any() and torch.equal(gated.image.permute(0, 2, 3, 1)[small], x.permute(0, 2, 3, 1)[small])
        assert not torch.equal(gated.image, plain.image)
        G_off.train(), G_on.train()
        assert torch.equal(G_on(x, aus).image, G_off(x, aus).image)  # training mode: as trained


def test_the_flow_gate_zeroes_short_vectors_keeps_long_ones_and_ramps_between():
    from dftnet.nets.models import flow_in_pixels, gate_flow

    lengths_px = torch.tensor([0.2, 0.5, 0.75, 1.0, 1.5, 3.0])
    Phi = torch.zeros(1, 2, 1, 6)
    Phi[0, 0, 0] = lengths_px * 2 / 6  # x offsets: one pixel is 2 / W, W = 6
    out = flow_in_pixels(gate_flow(Phi, 0.5))[0, 0, 0]
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 0.375, 1.0, 1.5, 3.0]))
    assert torch.equal(gate_flow(Phi, 0.0), Phi)


def test_the_weight_average_only_reads_the_generator_and_is_what_a_run_is_scored_by(tmp_path):
    ds, off, on = random_dataset(), tiny_run(epochs=3), tiny_run(epochs=3, ema=0.9)
    assert "ema" not in off.to_dict()["train"] and run_config_from_dict(on.to_dict()) == on
    trainer.train(off, ds, tmp_path / "off")
    trainer.train(on, ds, tmp_path / "on", epochs_this_session=1)  # resumed: the average is in the checkpoint
    trainer.train(on, ds, tmp_path / "on")
    a = torch.load(tmp_path / "off" / trainer.CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "on" / trainer.CHECKPOINT, weights_only=True)
    for net in ("G", "D"):  # training is the same, bit for bit
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    assert "G_ema" not in a and set(b["G_ema"]) == set(b["G"])
    assert any(not torch.equal(b["G_ema"][k], b["G"][k]) for k in b["G"])
    G_avg = checkpoints.load_trained(tmp_path / "on")[0].state_dict()
    G_last = checkpoints.load_trained(tmp_path / "on", averaged=False)[0].state_dict()
    assert all(torch.equal(G_avg[k], b["G_ema"][k]) and torch.equal(G_last[k], b["G"][k]) for k in b["G"])


def test_the_weight_average_follows_its_warm_up_decay():
    run = tiny_run(ema=0.5)
    state = trainer.build_state(run, torch.device("cpu"))
    assert state.G_ema is not None
    p_avg, p_now = next(state.G_ema.parameters()), next(state.G.parameters())
    start = p_avg.detach().clone()
    with torch.no_grad():
        p_now.add_(1.0)
    state.step = 1  # decay min(0.5, 2 / 11) = 2/11: the average moves 9/11 of the way
    trainer.update_ema(state, run.train.ema)
    assert torch.allclose(p_avg, start + 9 / 11, atol=1e-6)
    state.step = 100  # decay min(0.5, 101 / 110) = 0.5
    before = p_avg.detach().clone()
    trainer.update_ema(state, run.train.ema)
    assert torch.allclose(p_avg, 0.5 * before + 0.5 * p_now, atol=1e-6)
