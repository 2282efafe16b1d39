"""``dftnet edit``: AU targets, expression presets, paste-back, interpolation, errors.

A toy trained run (a few steps on random images) is the model; tests that detect faces need
the Face Landmarker bundle of ../shared and skip without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_or_skip
from dftnet.training import train as trainer
from dftnet.data.aus import AU_INDEX, N_AUS
from dftnet.data.faces import LM, N_LANDMARKS, Face, paste_back
from dftnet.edit import EXPRESSIONS, Target, edit_photos, find, frame_weights, parse_aus
from dftnet.runtime.errors import DataError
from helpers import cli, one_line
from helpers import random_dataset, tiny_run

SIZE = 32


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "seed0"
    trainer.train(tiny_run(size=SIZE), random_dataset(size=SIZE), out, "cpu")
    return out


@pytest.fixture(scope="module")
def landmarker(bundle):
    from dftnet.data.faces import Landmarker

    with Landmarker(bundle, max_faces=8) as lm:
        yield lm


@pytest.fixture(scope="module")
def face_photo(shared_dir) -> Path:
    return shared_or_skip(shared_dir / "data" / "ganimation-sample" / "imgs" / "N_0000000356_00190.jpg",
                          "GANimation sample")


def _face(r_eye, l_eye, mouth) -> Face:
    marks = np.zeros((N_LANDMARKS, 2), np.float32)
    for names, xy in ((("eye_r_outer", "eye_r_inner"), r_eye), (("eye_l_inner", "eye_l_outer"), l_eye),
                      (("mouth_r", "mouth_l"), mouth)):
        for n in names:
            marks[LM[n]] = xy
    return Face(marks, {})


# ------------------------------------------------------------------ no face detection
def test_aus_parsing_and_its_errors():
    assert parse_aus("AU12=3, au6=2.5,AU45=0") == {"AU12": 3.0, "AU06": 2.5, "AU45": 0.0}
    for text, msg in (("AU99=1", "AU99 is not one of the suite's 17 AUs"), ("AU12=6", "AU12=6 is outside the AU scale 0-5"),
                      ("AU12=-1", "outside the AU scale"), ("AU12", "is not AU<nn>=<intensity>"),
                      ("AU12=1,AU12=2", "AU12 given twice"), ("", "no AU given"), ("AU12=1.2.3", "is not a number")):
        with pytest.raises(DataError, match=msg):
            parse_aus(text)


def test_expression_presets_set_their_aus_and_keep_the_rest():
    source = np.arange(N_AUS, dtype=np.float32) / 4
    goal = Target(expression="surprise", strength=4.0).resolve(source, None)
    for name in ("AU01", "AU02", "AU05", "AU26"):
        assert goal[AU_INDEX[name]] == 4.0
    others = [i for n, i in AU_INDEX.items() if n not in EXPRESSIONS["surprise"]]
    np.testing.assert_array_equal(goal[others], source[others])
    assert Target(aus={"AU12": 5.0}).resolve(source, None)[AU_INDEX["AU12"]] == 5.0
    assert all(set(aus) <= set(AU_INDEX) for aus in EXPRESSIONS.values())
    with pytest.raises(DataError, match="--expression: 'joy' is not one of"):
        Target(expression="joy")
    with pytest.raises(DataError, match="--strength: 7 is outside"):
        Target(expression="anger", strength=7)
    with pytest.raises(DataError, match="exactly one target"):
        Target(aus={"AU12": 1.0}, expression="anger")
    assert frame_weights(1).tolist() == [1.0] and frame_weights(3).tolist() == [0.0, 0.5, 1.0]


def test_paste_back_leaves_pixels_outside_the_feathered_face_unchanged():
    import cv2

    from dftnet.data.faces import CANONICAL, paste_mask, similarity

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    face = _face((140.0, 100.0), (180.0, 104.0), (158.0, 150.0))
    crop = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = paste_back(photo, crop, face)
    m = similarity(face.eyes_mouth, CANONICAL * 64)
    mask = cv2.warpAffine(paste_mask(64), m, (320, 240), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    outside = mask == 0
    assert outside.mean() > 0.8 and (~outside).sum() > 1000
    np.testing.assert_array_equal(out[outside], photo[outside])
    assert (out[mask == 1] != photo[mask == 1]).any()  # the face itself was replaced


def test_an_unfinished_run_is_refused_with_one_line(tmp_path):
    from dftnet.training.checkpoints import require_finished

    out = tmp_path / "seed0"
    trainer.train(tiny_run(size=SIZE, epochs=3), random_dataset(size=SIZE), out, "cpu", epochs_this_session=1)
    with pytest.raises(DataError, match=r"training not finished \(epoch 1 of 3\)"):
        require_finished(out)
    with pytest.raises(DataError, match="no checkpoint.pt"):
        require_finished(tmp_path)


# ------------------------------------------------------------------ with the bundle
def test_the_first_frame_is_the_edit_at_the_sources_own_aus(tmp_path, toy_run, landmarker, face_photo):
    from dftnet.training.checkpoints import load_trained

    G, _, run = load_trained(toy_run)
    own = np.linspace(0.5, 3.0, N_AUS).astype(np.float32)
    reader = lambda crops: np.tile(own, (len(crops), 1))  # noqa: E731 (a seam: any AU reader)
    edit_photos([face_photo], G, run.image_size, Target(expression="happiness"), tmp_path / "a", reader, landmarker,
                steps=4, crop=True, paste="plain")
    same = Target(aus={n: float(own[i]) for n, i in AU_INDEX.items()})
    edit_photos([face_photo], G, run.image_size, same, tmp_path / "b", None, landmarker, crop=True, paste="plain")
    strip = np.asarray(Image.open(tmp_path / "a" / f"{face_photo.stem}_crop_strip.png"))
    first = np.asarray(Image.open(tmp_path / "b" / f"{face_photo.stem}_crop_edit.png"))
    assert strip.shape == (SIZE, 4 * SIZE, 3)
    np.testing.assert_array_equal(strip[:, :SIZE], first)
    last = np.asarray(Image.open(tmp_path / "a" / f"{face_photo.stem}_crop_edit.png"))
    np.testing.assert_array_equal(strip[:, -SIZE:], last)
    # the change paste: at the source's own AUs there is no change, so the first frame is the crop itself
    edit_photos([face_photo], G, run.image_size, Target(expression="happiness"), tmp_path / "c", reader, landmarker,
                steps=4, crop=True)
    strip = np.asarray(Image.open(tmp_path / "c" / f"{face_photo.stem}_crop_strip.png"))
    crop = find([face_photo], landmarker, run.image_size, None)[0].crop
    np.testing.assert_array_equal(strip[:, :SIZE], crop)
    assert (strip[:, -SIZE:] != crop).any()


def test_a_pasted_edit_keeps_the_photo_size_and_writes_a_gif(tmp_path, toy_run, landmarker, face_photo):
    from dftnet.training.checkpoints import load_trained

    G, _, run = load_trained(toy_run)
    reader = lambda crops: np.zeros((len(crops), N_AUS), np.float32)  # noqa: E731
    written = edit_photos([face_photo], G, run.image_size, Target(expression="surprise"), tmp_path, reader,
                          landmarker, steps=3, gif=True)
    photo = np.asarray(Image.open(face_photo).convert("RGB"))
    edited = np.asarray(Image.open(tmp_path / f"{face_photo.stem}_edit.png"))
    assert edited.shape == photo.shape and (edited != photo).any()
    assert Image.open(tmp_path / f"{face_photo.stem}.gif").n_frames == 4 and len(written) == 3  # 0 1 2 1


def test_several_faces_need_a_choice_and_errors_write_nothing(tmp_path, toy_run, landmarker, face_photo, shared_dir):
    from dftnet.training.checkpoints import load_trained

    G, _, run = load_trained(toy_run)
    other = shared_dir / "data" / "ganimation-sample" / "imgs" / "N_0000000437_00540.jpg"
    pair = np.concatenate([np.asarray(Image.open(face_photo).convert("RGB")),
                           np.asarray(Image.open(other).convert("RGB"))], axis=1)
    Image.fromarray(pair).save(tmp_path / "two.png")
    noise = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    target = Target(aus={n: 1.0 for n in AU_INDEX})
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"two.png: 2 faces found; choose one with --face largest or --face N"):
        edit_photos([tmp_path / "two.png"], G, SIZE, target, out, None, landmarker, paste="plain")
    with pytest.raises(DataError, match=r"noise.png: no face found"):
        edit_photos([face_photo, tmp_path / "noise.png"], G, SIZE, target, out, None, landmarker, paste="plain")
    assert not out.exists()  # the good photo before the bad one was not written either
    with pytest.raises(DataError, match=r"no AU reader is available.*--paste plain"):
        edit_photos([tmp_path / "two.png"], G, SIZE, target, out, None, landmarker, face="2")
    written = edit_photos([tmp_path / "two.png"], G, SIZE, target, out, None, landmarker, face="2", paste="plain")
    assert [p.name for p in written] == ["two_edit.png"]
    with pytest.raises(DataError, match="--face: '3' is not 'largest' or a face number 1-2"):
        edit_photos([tmp_path / "two.png"], G, SIZE, target, out, None, landmarker, face="3", paste="plain")


def test_edit_cli_errors_are_one_line(tmp_path, toy_run, face_photo):
    from helpers import toy_params

    params = toy_params()
    params["data"]["photos"]["landmarker"] = str(face_photo.parents[3] / "models" / "face_landmarker.task")
    (tmp_path / "params.yaml").write_text(__import__("yaml").safe_dump(params))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    run = str(toy_run)
    assert "AU99 is not one of" in one_line(cli(tmp_path, "edit", str(face_photo), "--run", run, "--aus", "AU99=1"))
    assert "AU12=9 is outside" in one_line(cli(tmp_path, "edit", str(face_photo), "--run", run, "--aus", "AU12=9"))
    assert "bad.jpg: corrupt or truncated image" in one_line(
        cli(tmp_path, "edit", str(bad), "--run", run, "--aus", ",".join(f"AU{n[2:]}=1" for n in AU_INDEX)))
    assert "no checkpoint.pt" in one_line(cli(tmp_path, "edit", str(face_photo), "--run", str(tmp_path), "--expression",
                                              "anger"))
    assert not (tmp_path / "edits").exists()
    shutil.rmtree(tmp_path / "edits", ignore_errors=True)


def test_the_change_paste_adds_only_the_change_and_a_luminance_change_keeps_the_chroma():
    from dftnet.edit import is_grey, luminance, paste_change

    rng = np.random.default_rng(0)
    photo = rng.integers(40, 200, (120, 100, 3), dtype=np.uint8)
    face = _face((35, 50), (65, 50), (50, 85))
    np.testing.assert_array_equal(paste_change(photo, np.zeros((32, 32, 3), np.float32), face), photo)
    change = np.full((32, 32, 1), 10.0, np.float32)   # a luminance change
    out = paste_change(photo, change, face)
    moved = (out != photo).any(-1)
    assert moved.any() and not moved[0, 0] and not moved[-1, -1]   # outside the feathered face: bit for bit
    d = out.astype(int) - photo.astype(int)
    np.testing.assert_array_equal(d[..., 0], d[..., 1])            # the same step on R, G and B: chroma kept
    np.testing.assert_array_equal(d[..., 1], d[..., 2])
    assert d.max() == 10 and d.min() == 0
    grey = luminance(photo)
    assert is_grey(grey[None]) and not is_grey(photo[None])
    assert grey[0, 0, 0] == round(float(photo[0, 0] @ np.array([0.299, 0.587, 0.114])))


def test_auto_colour_follows_the_training_data(tmp_path):
    from dftnet.edit import resolve_colour

    assert resolve_colour("auto", tmp_path / "nothing") == "rgb"     # no dataset to tell: colour as given
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "meta.json").write_text('{"format_version": 1}')
    (root / "train_ids.txt").write_text("a\nb\n")
    grey = np.full((8, 8, 3), 90, np.uint8)
    Image.fromarray(grey).save(root / "images" / "a.png")
    Image.fromarray(grey).save(root / "images" / "b.png")
    assert resolve_colour("auto", root) == "luminance"
    colour = grey.copy()
    colour[0, 0] = (200, 10, 10)
    Image.fromarray(colour).save(root / "images" / "b.png")
    assert resolve_colour("auto", root) == "rgb"
    (root / "meta.json").write_text('{"format_version": 1, "grey": true}')  # meta.json says so: believed
    assert resolve_colour("auto", root) == "luminance" and resolve_colour("rgb", root) == "rgb"
    with pytest.raises(DataError, match="--colour: 'sepia' is not one of auto, luminance, rgb"):
        resolve_colour("sepia", root)


def test_edit_right_after_install_uses_the_shipped_generator(tmp_path, face_photo, bundle):
    from helpers import toy_params

    params = toy_params()
    params["data"]["photos"]["landmarker"] = str(bundle)
    out = cli(tmp_path, "edit", str(face_photo), "--expression", "happiness", "--strength", "4", "--out", "e",
              params=params)
    assert out.returncode == 0, out.stderr[-2000:]
    photo = np.asarray(Image.open(face_photo).convert("RGB"))
    edited = np.asarray(Image.open(tmp_path / "e" / f"{face_photo.stem}_edit.png"))
    assert edited.shape == photo.shape and (edited != photo).any()
    # a colour photo through the grey model (auto: luminance): the change is the same on R, G and B
    d = edited.astype(int) - photo.astype(int)
    changed = (d != 0).any(-1) & (edited < 255).all(-1) & (edited > 0).all(-1)  # not clipped
    assert changed.sum() > 100 and (np.abs(d[changed][:, 0] - d[changed][:, 1]) <= 1).all()
    assert (np.abs(d[changed][:, 1] - d[changed][:, 2]) <= 1).all()
