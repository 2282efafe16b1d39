"""Real faces: detection, alignment, the MediaPipe AU proxies, the manifest, bad input.

Tests that need ../shared (the GANimation sample, faces-gray, the Face Landmarker bundle) skip
when it is absent; calibration, canonical round trips and the transform need nothing."""

from __future__ import annotations

import dataclasses

import csv
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dftnet.config import PhotosConfig
from dftnet.data.annotator import AU_CUES, CUE_NAMES, Calibration
from dftnet.data.aus import AU_INDEX, AU_NAMES, N_AUS
from dftnet.data.canonical import load_dataset, save_dataset
from dftnet.data.dataset import FaceDataset
from dftnet.data.faces import CANONICAL, check_bundle, similarity
from dftnet.data.photos import identity_of
from dftnet.runtime.errors import DataError
from helpers import cli, one_line


@pytest.fixture(scope="session")
def landmarker(bundle):
    from dftnet.data.faces import Landmarker

    with Landmarker(bundle) as lm:
        yield lm


def _labelled(faces_gray: Path, emotion: str, n: int) -> list[Path]:
    with open(faces_gray / "labels.csv", newline="") as fh:
        names = [r["image"] for r in csv.DictReader(fh) if r["emotion"] == emotion]
    return [faces_gray / "images" / name for name in sorted(names)[:n]]


# ------------------------------------------------------------------ no shared data
def test_similarity_recovers_a_known_transform():
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -2.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.array([[10.0, 20.0], [40.0, 22.0], [25.0, 50.0]])
    m = similarity(src, src @ rot.T + shift)
    np.testing.assert_allclose(m, np.hstack([rot, shift[:, None]]), atol=1e-9)


def test_calibration_maps_zero_to_0_and_five_to_5_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    cues = rng.normal(size=(200, len(CUE_NAMES)))
    neutral = np.zeros(200, bool)
    neutral[:50] = True
    cal = Calibration.fit(cues, neutral)
    assert cal.n_neutral == 50 and cal.n_faces == 200
    np.testing.assert_allclose([cal.zero[n] for n in CUE_NAMES], np.median(cues[:50], 0))
    zero = np.array([[cal.zero[n] for n in CUE_NAMES]])
    five = np.array([[cal.five[n] for n in CUE_NAMES]])
    np.testing.assert_allclose(cal.aus(zero), 0.0, atol=1e-12)
    np.testing.assert_allclose(cal.aus(five), 5.0)
    assert cal.aus(five + 100).max() == 5.0 and cal.aus(zero - 100).min() == 0.0  # clipped to 0-5
    # an AU of two cues is their mean: only one of AU04's cues at its 5 reads 2.5
    half = zero.copy()
    half[0, CUE_NAMES.index(AU_CUES["AU04"][0])] = five[0, CUE_NAMES.index(AU_CUES["AU04"][0])]
    assert cal.aus(half)[0, AU_INDEX["AU04"]] == pytest.approx(2.5)
    # through JSON (meta.json) and back: the same mapping
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())), "meta.json")
    np.testing.assert_array_equal(back.aus(cues), cal.aus(cues))
    # fewer than MIN_NEUTRAL neutral faces: the zero is every face's median
    assert Calibration.fit(cues, neutral & (np.arange(200) < 5)).n_neutral == 0


def test_a_broken_calibration_is_one_line_naming_the_key():
    cal = Calibration.fit(np.random.default_rng(0).normal(size=(30, len(CUE_NAMES)))).to_dict()
    cal["five"]["jawOpen"] = "x"
    with pytest.raises(DataError, match=r"meta.json: annotator calibration five.jawOpen: expected a number"):
        Calibration.from_dict(cal, "meta.json")


def test_identity_from_lfw_style_names():
    assert identity_of("Ann_Lee_0002") == "Ann_Lee" and identity_of("N_0000000356_00190") == "N_0000000356"
    assert identity_of("portrait") == "portrait"


def test_the_canonical_format_keeps_the_judge_split_emotions_and_manifest(tmp_path):
    n = 6
    ids = [f"p{i}" for i in range(n)]
    ds = FaceDataset(ids=ids, images=torch.randint(0, 255, (n, 3, 16, 16), dtype=torch.uint8),
                     aus=torch.rand(n, N_AUS) * 5, train_ids=ids[:2], test_ids=ids[4:], judge_ids=ids[2:4],
                     emotions=["neutral", "", "happiness", "neutral", "surprise", ""],
                     skipped=[("a b.jpg", "no face found"), ("c.png", "unreadable: corrupt, or not")], meta={"x": 1})
    save_dataset(ds, tmp_path / "d")
    back = load_dataset(tmp_path / "d")
    assert back.judge_ids == ids[2:4] and back.emotions == ds.emotions and back.skipped == ds.skipped
    assert back.index(back.judge_ids).tolist() == back.judge_idx.tolist() == [2, 3]
    ds.judge_ids = ["p0", "p2"]  # p0 is a GAN training image: the judge would not be independent
    with pytest.raises(DataError, match="judge_ids: id p0"):
        save_dataset(ds, tmp_path / "e")


def test_a_missing_or_wrong_bundle_is_one_line(tmp_path):
    with pytest.raises(DataError, match="bundle not found"):
        check_bundle(tmp_path / "nope.task")
    (tmp_path / "text.task").write_text("not a zip")
    with pytest.raises(DataError, match=r"text.task: not a MediaPipe Face Landmarker bundle"):
        check_bundle(tmp_path / "text.task")
    with zipfile.ZipFile(tmp_path / "hands.task", "w") as z:  # another MediaPipe bundle
        z.writestr("hand_detector.tflite", b"")
    with pytest.raises(DataError, match=r"hands.task: not a Face Landmarker bundle .*face_detector.tflite"):
        check_bundle(tmp_path / "hands.task")


def test_prepare_with_a_missing_bundle_stops_with_one_line(tmp_path):
    from helpers import toy_params

    params = toy_params()
    (tmp_path / "photos").mkdir()
    params["data"].update(source="photos", photos={"images": "photos", "landmarker": "missing.task"})
    line = one_line(cli(tmp_path, "prepare", params=params))
    assert "missing.task: MediaPipe Face Landmarker bundle not found" in line


# ------------------------------------------------------------------ with ../shared
def test_faces_of_the_ganimation_sample_land_on_the_canonical_points(ganimation_sample, landmarker):
    from dftnet.data.faces import align, find_face

    steps = {}
    for path in sorted((ganimation_sample / "imgs").iterdir()):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        face, steps[path.stem] = find_face(landmarker, rgb)
        for size in (64, 128):
            crop = align(rgb, face, size)
            again, _ = find_face(landmarker, crop)
            # within a few pixels: three points, a least-squares fit, and a second detection
            assert np.abs(again.eyes_mouth - CANONICAL * size).max() < 0.04 * size, (path.name, size)
    # read as is, this photo holds a second, tiny false face; padded, only the real one
    assert steps["N_0000001939_00054"] == "padded"
    assert set(steps.values()) <= {"as is", "padded"}


def test_a_smiling_face_reads_higher_au12_than_a_neutral_one(faces_gray, landmarker):
    from dftnet.data.photos import prepare_photo

    photos = _labelled(faces_gray, "happiness", 6) + _labelled(faces_gray, "neutral", 6)
    cues = np.stack([prepare_photo(p, 64, landmarker)[2] for p in photos])
    neutral = np.r_[np.zeros(6, bool), np.ones(6, bool)]
    aus = Calibration.fit(cues, neutral).aus(cues)
    au12 = aus[:, AU_INDEX["AU12"]]
    assert au12[:6].mean() > au12[6:].mean() + 1.0, au12


def test_the_manifest_lists_a_non_face_and_a_corrupt_file_and_nothing_usable_stops(tmp_path, faces_gray, bundle):
    from dftnet.data.photos import ingest_photos

    folder = tmp_path / "photos"
    folder.mkdir()
    people = ["Aaron_Eckhart_0001", "AJ_Cook_0001", "AJ_Lamas_0001", "Abba_Eban_0001", "Abbas_Kiarostami_0001",
              "Abel_Pacheco_0001"]
    for name in people:
        shutil.copy(faces_gray / "images" / f"{name}.jpg", folder)
    Image.fromarray((np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8)).save(folder / "noise.png")
    (folder / "corrupt.jpg").write_bytes((faces_gray / "images" / f"{people[0]}.jpg").read_bytes()[:600])
    (folder / "notes.txt").write_text("not a photo")
    cfg = PhotosConfig(images=str(folder), landmarker=str(bundle), n_test=2, n_val=0, n_judge=2, workers=1)
    ds = ingest_photos(cfg, 32)
    skipped = dict(ds.skipped)
    assert set(skipped) == {"noise.png", "corrupt.jpg", "notes.txt"}
    assert skipped["noise.png"] == "no face found" and skipped["corrupt.jpg"].startswith("unreadable: corrupt")
    assert sorted(ds.ids) == sorted(people) and ds.images.shape == (6, 3, 32, 32)
    assert len(ds.test_ids) == 2 and ds.judge_ids and ds.train_ids
    assert ds.meta["n_files"] == 9 and ds.meta["n_skipped"] == 3
    save_dataset(ds, tmp_path / "prepared")
    rows = list(csv.reader(open(tmp_path / "prepared" / "skipped.csv")))
    assert rows[0] == ["file", "reason"] and len(rows) == 4
    # too few people for the split: said after the detection pass, with sizes that fit, and
    # without promising a skipped.csv that is never written
    with pytest.raises(DataError, match=r"usable faces do not fit the split sizes: 6 people.*Sizes that fit: "
                                        r"n_test: 2, n_val: 2.*\(3 photos skipped, first: corrupt.jpg: unreadable"):
        ingest_photos(dataclasses.replace(cfg, n_test=5), 32)
    for name in people:
        (folder / f"{name}.jpg").unlink()
    # checked on the files, before any face is looked for
    with pytest.raises(DataError, match=r"2 photo files cannot fit the split sizes: 2 people, but n_test 2"):
        ingest_photos(cfg, 32)
    for k in range(2):
        Image.fromarray(np.zeros((60, 60, 3), np.uint8)).save(folder / f"blank{k}.png")
    with pytest.raises(DataError, match=r"only 0 usable faces in 5 files; first: blank0.png: no face found"):
        ingest_photos(dataclasses.replace(cfg, n_judge=1), 32)


def test_the_annotator_reads_a_prepared_crop_as_prepare_labelled_it(tmp_path, faces_gray, bundle):
    """The evaluation's reading of an unedited crop equals the label prepare gave it."""
    from dftnet.data.photos import annotator_for, ingest_photos

    folder = tmp_path / "photos"
    folder.mkdir()
    for p in _labelled(faces_gray, "happiness", 3) + _labelled(faces_gray, "neutral", 3):
        shutil.copy(p, folder)
    ds = ingest_photos(PhotosConfig(images=str(folder), landmarker=str(bundle), n_test=2, n_val=0, n_judge=1, workers=2), 64)
    annotator = annotator_for(ds.meta)
    try:
        read, found = annotator.read(ds.images.numpy())
    finally:
        annotator.close()
    assert found.all()
    np.testing.assert_allclose(read, ds.aus.numpy(), atol=1e-5)
    assert read.shape == (6, len(AU_NAMES))


@pytest.mark.slow
def test_the_whole_benchmark_runs_on_a_few_real_photos(tmp_path, faces_gray, bundle, ganimation_sample):
    """``dftnet bench`` on 20 faces-gray photos at toy size: every output, the MediaPipe reading
    in every metrics file, the gate on it, and the annotator's validity report."""
    import yaml

    from helpers import toy_params

    folder = tmp_path / "photos"
    folder.mkdir()
    for p in _labelled(faces_gray, "happiness", 10) + _labelled(faces_gray, "neutral", 10):
        shutil.copy(p, folder)
    params = toy_params()
    params["data"].update(source="photos", root="prepared")
    params["data"]["photos"].update(images=str(folder), labels=str(faces_gray / "labels.csv"), landmarker=str(bundle),
                                    n_test=4, n_val=2, n_judge=4, n_train=0, workers=2,
                                    openface_images=str(ganimation_sample / "imgs"),
                                    openface_aus=str(ganimation_sample / "aus_openface.pkl"))
    params["seeds"] = [0]
    params["variants"] = {k: params["variants"][k] for k in ("dftnet", "ganimation")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = cli(tmp_path, "bench", "--work", "w", "--reports", "rep", "--annotator-report", "rep/annotator.md")
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "w" / "eval" / "dftnet" / "seed0" / "metrics.json").read_text())
    assert metrics["protocol"]["n_pairs"] == 4 and len(metrics["per_pair"]["au_mae_mp"]) == 4
    assert 0.0 <= metrics["summary"]["mp_found"] <= 1.0 and metrics["summary"]["au_mae_mp_source"] > 0
    assert "annotator" not in metrics["protocol"]["unavailable"]
    claims = (tmp_path / "rep" / "claims.md").read_text()
    assert "AU readings by the MediaPipe AU proxy" in claims  # the gate reads the annotator on photos
    validity = json.loads((tmp_path / "w" / "metrics" / "annotator.json").read_text())
    assert validity["expressions"]["happiness"]["n"] == 10 and validity["openface"]["n_photos"] == 4
    assert "MediaPipe AU proxies, not OpenFace AUs" in (tmp_path / "rep" / "annotator.md").read_text()
    assert (tmp_path / "prepared" / "judge_ids.txt").read_text().count("\n") >= 4


def test_one_validation_person_stops_before_any_detection(tmp_path):
    from dftnet.data.photos import ingest_photos

    cfg = PhotosConfig(images=str(tmp_path / "absent"), landmarker=str(tmp_path / "absent.task"), n_val=1)
    with pytest.raises(DataError, match=r"^data\.photos\.n_val: 1 validation person cannot make pairs"):
        ingest_photos(cfg, 32)
