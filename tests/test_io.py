"""The canonical dataset format, the real-data readers and the bad-input contract."""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dftnet.config import FolderConfig
from dftnet.data import canonical, images
from dftnet.data.aus import AU_NAMES
from dftnet.data.dataset import EvalPairs, FaceDataset
from dftnet.data.au_tables import read_au_table
from dftnet.data.canonical import load_dataset, save_dataset
from dftnet.data.ingest import ingest_folder
from dftnet.runtime.errors import DataError


# ---------------------------------------------------------------------- helpers
def canonical_dataset(n: int = 8, side: int = 16, seed: int = 0, gt: bool = True) -> FaceDataset:
    g = torch.Generator().manual_seed(seed)
    ids = [f"img{i:02d}" for i in range(n)]
    aus = (torch.rand(n, 17, generator=g) * 5).mul(100).round().div(100)  # 2 decimals, like OpenFace
    p = 3
    pairs = EvalPairs(pair_ids=[f"pair{k}" for k in range(p)], source_ids=ids[-p:],
                      target_ids=[ids[-1], "", ids[-3]], target_aus=torch.rand(p, 17, generator=g) * 5,
                      gt=torch.randint(0, 256, (p, 3, side, side), generator=g, dtype=torch.uint8) if gt else None)
    return FaceDataset(ids=ids, images=torch.randint(0, 256, (n, 3, side, side), generator=g, dtype=torch.uint8),
                       aus=aus, train_ids=ids[:5], test_ids=ids[5:], identities=[f"person{i // 2}" for i in range(n)],
                       pairs=pairs, meta={"source": "test", "seed": seed})


def assert_same(a: FaceDataset, b: FaceDataset) -> None:
    assert a.ids == b.ids and a.train_ids == b.train_ids and a.test_ids == b.test_ids
    assert torch.equal(a.images, b.images) and torch.equal(a.aus, b.aus)
    assert a.identities == b.identities
    assert a.pairs.pair_ids == b.pairs.pair_ids and a.pairs.source_ids == b.pairs.source_ids
    assert a.pairs.target_ids == b.pairs.target_ids and torch.equal(a.pairs.target_aus, b.pairs.target_aus)
    assert (a.pairs.gt is None and b.pairs.gt is None) or torch.equal(a.pairs.gt, b.pairs.gt)


def raises_data_error(fn, *needles: str) -> str:
    """Call ``fn``; it must raise one-line DataError containing every needle."""
    with pytest.raises(DataError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def edit_line(path, line: int, fn) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = fn(lines[line - 1])
    path.write_text("\n".join(lines) + "\n")


def set_field(path, line: int, column: str, value: str) -> None:
    col = path.read_text().splitlines()[0].split(",").index(column)
    edit_line(path, line, lambda text: ",".join(value if i == col else f for i, f in enumerate(text.split(","))))


@pytest.fixture
def saved(tmp_path):
    root = tmp_path / "ds"
    save_dataset(canonical_dataset(), root)
    return root


# ---------------------------------------------------------- canonical round trip
def test_save_load_round_trip_is_exact(tmp_path):
    ds = canonical_dataset()
    save_dataset(ds, tmp_path / "ds")
    back = load_dataset(tmp_path / "ds")
    assert_same(ds, back)
    assert back.meta == {"source": "test", "seed": 0, "format_version": 1}
    assert (tmp_path / "ds" / "aus.csv").read_text().splitlines()[0] == ",".join(["id", *AU_NAMES])


def test_au_text_is_short_and_exact_for_any_float32(tmp_path):
    ds = canonical_dataset(gt=False)
    ds.aus[0, 0] = 0.65
    ds.aus[1] = torch.rand(17) * 5  # not rounded: still exact
    save_dataset(ds, tmp_path / "ds")
    assert (tmp_path / "ds" / "aus.csv").read_text().splitlines()[1].split(",")[1] == "0.65"
    assert torch.equal(load_dataset(tmp_path / "ds").aus, ds.aus)
    assert load_dataset(tmp_path / "ds").pairs.gt is None


def test_save_replaces_an_existing_dataset(saved, tmp_path):
    other = canonical_dataset(seed=1)
    save_dataset(other, saved)
    assert_same(other, load_dataset(saved))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


class Boom(RuntimeError):
    pass


def failing_write(monkeypatch, after: int) -> None:
    calls = []
    real = images.write_png

    def write(path, image):
        calls.append(path)
        if len(calls) > after:
            raise Boom("disk full")
        real(path, image)

    monkeypatch.setattr(canonical, "write_png", write)


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    failing_write(monkeypatch, after=3)
    with pytest.raises(Boom):
        save_dataset(canonical_dataset(), tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_previous_dataset(saved, tmp_path, monkeypatch):
    failing_write(monkeypatch, after=3)
    with pytest.raises(Boom):
        save_dataset(canonical_dataset(seed=1), saved)
    assert_same(canonical_dataset(), load_dataset(saved))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_save_refuses_to_replace_a_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    raises_data_error(lambda: save_dataset(canonical_dataset(), tmp_path / "home"), "home", "not a dataset folder")
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"


def test_save_refuses_an_inconsistent_dataset(tmp_path):
    ds = canonical_dataset()
    ds.test_ids.append(ds.train_ids[0])
    raises_data_error(lambda: save_dataset(ds, tmp_path / "ds"), "img00", "both")
    ds = canonical_dataset()
    ds.ids[1] = "../escape"
    raises_data_error(lambda: save_dataset(ds, tmp_path / "ds"), "../escape")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ canonical bad input
@pytest.mark.parametrize("value, shown", [("7.5", "AU12 = 7.5 is outside [0, 5]"), ("nan", "AU12 = nan"),
                                          ("-0.5", "AU12 = -0.5 is outside"), ("abc", "AU12 = 'abc' is not a number")])
def test_bad_au_value_names_file_line_id_and_column(saved, value, shown):
    set_field(saved / "aus.csv", 7, "AU12", value)
    raises_data_error(lambda: load_dataset(saved), "aus.csv line 7 (id img05)", shown)


def test_missing_au_column(saved):
    path = saved / "aus.csv"
    rows = [line.split(",") for line in path.read_text().splitlines()]
    col = rows[0].index("AU12")
    path.write_text("\n".join(",".join(r[:col] + r[col + 1:]) for r in rows) + "\n")
    raises_data_error(lambda: load_dataset(saved), "aus.csv", "missing column AU12")


def test_ragged_row(saved):
    edit_line(saved / "aus.csv", 3, lambda text: text + ",1")
    raises_data_error(lambda: load_dataset(saved), "aus.csv line 3", "19 fields")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_image(saved, damage):
    path = saved / "images" / "img03.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a png at all" * 10)
    raises_data_error(lambda: load_dataset(saved), "img03.png", "corrupt or truncated")


def test_image_of_another_size(saved):
    Image.new("RGB", (8, 8)).save(saved / "images" / "img04.png")
    raises_data_error(lambda: load_dataset(saved), "img04.png", "8x8", "16x16")


def test_id_without_image(saved):
    (saved / "images" / "img02.png").unlink()
    raises_data_error(lambda: load_dataset(saved), "img02.png", "not found")


def test_image_without_au_row(saved):
    shutil.copy(saved / "images" / "img02.png", saved / "images" / "stray.png")
    raises_data_error(lambda: load_dataset(saved), "stray.png", "without a row in aus.csv")


def test_split_id_without_au_row(saved):
    with open(saved / "train_ids.txt", "a") as fh:
        fh.write("ghost\n")
    raises_data_error(lambda: load_dataset(saved), "train_ids.txt line 6", "ghost")


def test_duplicate_id_in_au_table(saved):
    edit_line(saved / "aus.csv", 4, lambda text: "img01" + text[len("img02"):])
    raises_data_error(lambda: load_dataset(saved), "aus.csv line 4", "duplicate id img01", "line 3")


def test_duplicate_id_in_split(saved):
    with open(saved / "test_ids.txt", "a") as fh:
        fh.write("img06\n")
    raises_data_error(lambda: load_dataset(saved), "test_ids.txt line 4", "duplicate id img06")


def test_id_in_both_splits(saved):
    with open(saved / "test_ids.txt", "a") as fh:
        fh.write("img01\n")
    raises_data_error(lambda: load_dataset(saved), "test_ids.txt line 4", "img01", "train_ids.txt")


def test_empty_split(saved):
    (saved / "test_ids.txt").write_text("\n")
    raises_data_error(lambda: load_dataset(saved), "test_ids.txt", "empty split")


def test_pair_with_unknown_source(saved):
    set_field(saved / "pairs.csv", 2, "source_id", "nobody")
    raises_data_error(lambda: load_dataset(saved), "pairs.csv line 2 (pair pair0)", "nobody")


def test_wrong_format_version(saved):
    (saved / "meta.json").write_text('{"format_version": 2}')
    raises_data_error(lambda: load_dataset(saved), "meta.json", "format_version 2")


# ------------------------------------------------------------------ OpenFace CSVs
AU_R = [f"{name}_r" for name in AU_NAMES]
AU_C = [f"{name}_c" for name in AU_NAMES + ("AU28",)]


def openface_csv(path, lead: list[str], rows: list[dict], extra: tuple = ("gaze_0_x", "pose_Tx", "x_0", "y_0")):
    """OpenFace's layout: ', '-separated (names padded with a space), columns in a shuffled
    order so that only lookup by name can find the AUs; unlisted values are 0."""
    header = lead + list(extra) + AU_R + AU_C
    random.Random(1).shuffle(header)
    lines = [", ".join(header)] + [", ".join(str(row.get(name, 0)) for name in header) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def aus_row(base: float, **fields) -> dict:
    return {**{name: round(base + 0.1 * k, 2) for k, name in enumerate(AU_R)}, **fields}


FE_LEAD = ["frame", "face_id", "timestamp", "confidence", "success"]
IMG_LEAD = ["face", "confidence"]


def test_openface_feature_extraction_many_frames(tmp_path):
    openface_csv(tmp_path / "clip.csv", FE_LEAD, [
        aus_row(0.5, frame=1, face_id=0, confidence=0.98, success=1),
        aus_row(1.0, frame=2, face_id=0, confidence=0.50, success=1),
        aus_row(2.0, frame=2, face_id=1, confidence=0.90, success=1),  # the more confident face
        aus_row(3.0, frame=3, face_id=0, confidence=0.00, success=0),  # not tracked: dropped
    ])
    table = read_au_table(tmp_path / "clip.csv")
    assert sorted(table) == ["clip_000001", "clip_000002"]
    np.testing.assert_allclose(table["clip_000001"], [0.5 + 0.1 * k for k in range(17)], atol=1e-6)
    np.testing.assert_allclose(table["clip_000002"][0], 2.0)
    assert table["clip_000001"].dtype == np.float32


def test_openface_feature_extraction_single_frame_without_face_id(tmp_path):
    lead = ["frame", "timestamp", "confidence", "success"]  # OpenFace 2.0 has no face_id
    openface_csv(tmp_path / "face7.csv", lead, [aus_row(1.5, frame=1, confidence=0.9, success=1)])
    assert list(read_au_table(tmp_path / "face7.csv")) == ["face7"]


def test_openface_landmark_img_folder(tmp_path):
    folder = tmp_path / "openface"
    folder.mkdir()
    two_faces = [aus_row(0.2, face=0, confidence=0.4), aus_row(1.2, face=1, confidence=0.95)]
    openface_csv(folder / "a.csv", IMG_LEAD, two_faces)
    openface_csv(folder / "b.csv", IMG_LEAD, [aus_row(0.7, face=0, confidence=0.9)])
    openface_csv(folder / "c.csv", IMG_LEAD, [])  # no face found: no AUs for c
    (folder / "a_of_details.txt").write_text("OpenFace also writes these")
    table = read_au_table(folder)
    assert sorted(table) == ["a", "b"]
    np.testing.assert_allclose(table["a"][:2], [1.2, 1.3], atol=1e-6)


def test_openface_missing_au_column(tmp_path):
    openface_csv(tmp_path / "x.csv", IMG_LEAD, [aus_row(0.1)], extra=())
    text = (tmp_path / "x.csv").read_text().replace("AU12_r", "AU12_x")
    (tmp_path / "x.csv").write_text(text)
    raises_data_error(lambda: read_au_table(tmp_path / "x.csv"), "x.csv", "missing column AU12 or AU12_r")


def test_openface_value_out_of_range(tmp_path):
    openface_csv(tmp_path / "x.csv", IMG_LEAD, [aus_row(0.1, face=0, confidence=0.9, AU45_r=5.2)])
    raises_data_error(lambda: read_au_table(tmp_path / "x.csv"), "x.csv line 2 (id x)", "AU45 = 5.2")


def test_folder_with_a_csv_that_is_not_openface(tmp_path):
    (tmp_path / "a.csv").write_text("id,AU01\nx,1\n")
    raises_data_error(lambda: read_au_table(tmp_path), "a.csv", "not an OpenFace CSV")


# -------------------------------------------------------------------- plain CSVs
def test_plain_csv_by_name_with_image_column(tmp_path):
    names = list(reversed(AU_NAMES))
    lines = ["notes,image," + ",".join(f"{n}_r" for n in names),
             "x,imgs/a.jpg," + ",".join(str(AU_NAMES.index(n) / 10) for n in names)]
    (tmp_path / "aus.csv").write_text("\n".join(lines) + "\n")
    table = read_au_table(tmp_path / "aus.csv")
    assert list(table) == ["a"]
    np.testing.assert_allclose(table["a"], np.arange(17) / 10, atol=1e-6)


def test_plain_csv_same_image_twice(tmp_path):
    row = ",".join(["0"] * 17)
    (tmp_path / "aus.csv").write_text(f"id,{','.join(AU_NAMES)}\na,{row}\nb,{row}\na.jpg,{row}\n")
    raises_data_error(lambda: read_au_table(tmp_path / "aus.csv"), "aus.csv line 4", "duplicate id a", "line 2")


# ---------------------------------------------------------------------- pickles
class Pwn:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def dump(path, obj, protocol: int = 2):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def test_malicious_pickle_is_refused_without_side_effect(tmp_path):
    pwned = tmp_path / "pwned"
    path = dump(tmp_path / "aus_openface.pkl", {"a": Pwn(pwned)})
    raises_data_error(lambda: read_au_table(path), "aus_openface.pkl", "refused", "system")
    assert not pwned.exists()


def test_pickle_codecs_only_for_latin1(tmp_path):
    import codecs

    class Rot:
        def __reduce__(self):
            return codecs.encode, ("abc", "rot13")

    path = dump(tmp_path / "x.pkl", {"a": Rot()})
    raises_data_error(lambda: read_au_table(path), "x.pkl", "refused _codecs.encode", "rot13")


@pytest.mark.parametrize("obj, needles", [
    ([np.zeros(17)], ["expected a dict", "list"]),
    ({"a": np.zeros(17), "b": np.zeros(16)}, ["key 'b'", "17 AU values", "(16,)"]),
    ({"a": ["x"] * 17}, ["key 'a'", "17 numbers"]),
    ({"a": np.full(17, 6.0)}, ["key 'a'", "AU01 = 6"]),
])
def test_pickle_with_wrong_contents(tmp_path, obj, needles):
    path = dump(tmp_path / "aus.pkl", obj)
    raises_data_error(lambda: read_au_table(path), "aus.pkl", *needles)


def test_pickle_written_by_python3_and_keys_with_extensions(tmp_path):
    arr = np.linspace(0, 5, 17)
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        path = dump(tmp_path / "aus.pkl", {"x.jpg": arr, "y": arr.astype(np.float32), "z": list(arr)}, protocol)
        table = read_au_table(path)
        assert sorted(table) == ["x", "y", "z"]
        np.testing.assert_allclose(table["z"], arr, atol=1e-6)


def test_truncated_pickle(tmp_path):
    path = dump(tmp_path / "aus.pkl", {"a": np.zeros(17)})
    path.write_bytes(path.read_bytes()[:40])
    raises_data_error(lambda: read_au_table(path), "aus.pkl", "not a readable pickle")


# ---------------------------------------------------------------- real folders
def make_folder(root, n: int = 8, size: tuple = (20, 16)) -> FolderConfig:
    """n images (half jpg, half png) with a plain AU table and GANimation-style id lists."""
    rng = np.random.default_rng(0)
    (root / "imgs").mkdir()
    names = [f"f{i}.{'jpg' if i % 2 else 'png'}" for i in range(n)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / "imgs" / name)
    rows = [f"{name.split('.')[0]}," + ",".join(f"{v:.2f}" for v in rng.uniform(0, 5, 17)) for name in names]
    (root / "aus.csv").write_text("\n".join([f"id,{','.join(AU_NAMES)}", *rows]) + "\n")
    (root / "train.csv").write_text("\n".join(names[: n - 3]) + "\n")
    (root / "test.csv").write_text("\n".join(names[n - 3:]) + "\n")
    return FolderConfig(images=str(root / "imgs"), aus=str(root / "aus.csv"), train_ids=str(root / "train.csv"),
                        test_ids=str(root / "test.csv"), pairs_per_test_image=2, seed=3)


def test_ingest_folder(tmp_path):
    cfg = make_folder(tmp_path)
    ds = ingest_folder(cfg, 8)
    assert ds.ids == [f"f{i}" for i in range(8)] and ds.test_ids == ["f5", "f6", "f7"]
    assert ds.images.shape == (8, 3, 8, 8) and ds.images.dtype == torch.uint8
    assert ds.identities is None and ds.pairs.gt is None and len(ds.pairs) == 6
    assert all(s != t and t in ds.test_ids for s, t in zip(ds.pairs.source_ids, ds.pairs.target_ids))
    for t, aus in zip(ds.pairs.target_ids, ds.pairs.target_aus):
        assert torch.equal(aus, ds.aus[ds.ids.index(t)])
    assert ds.meta["aus_format"] == "plain-csv" and ds.meta["resize"] == images.RESIZE_RULE
    again = ingest_folder(cfg, 8)
    assert again.pairs.target_ids == ds.pairs.target_ids and torch.equal(again.images, ds.images)
    save_dataset(ds, tmp_path / "out")
    assert_same(ds, load_dataset(tmp_path / "out"))


def test_resize_rule_is_centre_crop_then_bicubic(tmp_path):
    cfg = make_folder(tmp_path, size=(20, 16))
    source = Image.open(tmp_path / "imgs" / "f0.png").convert("RGB")
    expected = source.crop((2, 0, 18, 16)).resize((8, 8), Image.Resampling.BICUBIC, reducing_gap=None)
    assert torch.equal(ingest_folder(cfg, 8).images[0], torch.from_numpy(np.array(expected)).permute(2, 0, 1))


def test_image_modes_are_converted_to_rgb(tmp_path):
    cfg = make_folder(tmp_path)
    imgs = tmp_path / "imgs"
    Image.new("L", (16, 16), 77).save(imgs / "f0.png")
    rgba = Image.new("RGBA", (16, 16), (10, 20, 30, 0))  # fully transparent: white
    rgba.save(imgs / "f2.png")
    Image.new("CMYK", (16, 16), (0, 0, 0, 0)).save(imgs / "f1.jpg")  # no ink: white
    Image.new("P", (16, 16), 0).save(imgs / "f4.png")
    Image.new("P", (16, 16), 0).save(imgs / "f6.png", transparency=0)  # palette entry 0 transparent: white
    ds = ingest_folder(cfg, 8)
    assert (ds.images[0] == 77).all()
    assert (ds.images[2] == 255).all()
    assert (ds.images[1] >= 250).all()
    assert ds.images[4].shape == (3, 8, 8)
    assert (ds.images[6] == 255).all()


def test_sixteen_bit_image_is_refused(tmp_path):
    cfg = make_folder(tmp_path)
    Image.fromarray(np.full((16, 16), 1000, dtype=np.uint16)).save(tmp_path / "imgs" / "f0.png")
    raises_data_error(lambda: ingest_folder(cfg, 8), "f0.png", "8-bit")


def test_ingest_split_id_without_image(tmp_path):
    cfg = make_folder(tmp_path)
    (tmp_path / "imgs" / "f3.jpg").unlink()
    raises_data_error(lambda: ingest_folder(cfg, 8), "train.csv line 4", "id f3 has no image")


def test_ingest_image_without_aus(tmp_path):
    cfg = make_folder(tmp_path)
    edit_line(tmp_path / "aus.csv", 8, lambda text: "other" + text[2:])  # drops f6's row
    raises_data_error(lambda: ingest_folder(cfg, 8), "test.csv line 2", "id f6 has no AU row", "aus.csv")


def test_ingest_same_stem_two_extensions(tmp_path):
    cfg = make_folder(tmp_path)
    shutil.copy(tmp_path / "imgs" / "f0.png", tmp_path / "imgs" / "f0.jpeg")
    raises_data_error(lambda: ingest_folder(cfg, 8), "duplicate id f0")


def test_ingest_corrupt_jpeg(tmp_path):
    cfg = make_folder(tmp_path)
    path = tmp_path / "imgs" / "f5.jpg"
    path.write_bytes(path.read_bytes()[:200])
    raises_data_error(lambda: ingest_folder(cfg, 8), "f5.jpg", "corrupt or truncated")


def test_ingest_same_id_in_both_splits_by_extension(tmp_path):
    cfg = make_folder(tmp_path)
    with open(tmp_path / "test.csv", "a") as fh:
        fh.write("f0\n")  # f0.png is in train.csv
    raises_data_error(lambda: ingest_folder(cfg, 8), "test.csv line 4", "f0", "train.csv")


def test_ingest_one_test_image_cannot_make_pairs(tmp_path):
    cfg = make_folder(tmp_path)
    (tmp_path / "test.csv").write_text("f7.jpg\n")
    raises_data_error(lambda: ingest_folder(cfg, 8), "at least 2")


# ------------------------------------------------------------ GANimation sample
SAMPLE_IDS = ["N_0000000356_00190", "N_0000000437_00540", "N_0000001507_00202", "N_0000001939_00054"]


def sample_cfg(folder, images=None) -> FolderConfig:
    return FolderConfig(images=str(images or folder / "imgs"), aus=str(folder / "aus_openface.pkl"),
                        train_ids=str(folder / "train_ids.csv"), test_ids=str(folder / "test_ids.csv"))


def test_ganimation_pickle(ganimation_sample):
    table = read_au_table(ganimation_sample / "aus_openface.pkl")
    assert sorted(table) == SAMPLE_IDS
    assert all(v.shape == (17,) and v.dtype == np.float32 for v in table.values())
    np.testing.assert_allclose(table["N_0000000356_00190"][:4], [2.86, 2.27, 1.45, 1.1], atol=1e-6)


def test_ganimation_sample_ingests(ganimation_sample, tmp_path):
    ds = ingest_folder(sample_cfg(ganimation_sample), 32)
    assert ds.images.shape == (4, 3, 32, 32)
    assert ds.train_ids == ["N_0000000437_00540", "N_0000000356_00190"]
    assert ds.pairs.target_ids == ds.test_ids[::-1]
    assert ds.meta["aus_format"] == "ganimation-pkl"
    save_dataset(ds, tmp_path / "ds")
    assert_same(ds, load_dataset(tmp_path / "ds"))


def test_ganimation_sample_in_other_modes(ganimation_sample, tmp_path):
    colour = ingest_folder(sample_cfg(ganimation_sample), 32)
    modes = dict(zip(SAMPLE_IDS, ["L", "RGBA", "CMYK", "P"]))
    for id_, mode in modes.items():
        im = Image.open(ganimation_sample / "imgs" / f"{id_}.jpg").convert(mode)
        im.save(tmp_path / f"{id_}.{'jpg' if mode == 'CMYK' else 'png'}")
    ds = ingest_folder(sample_cfg(ganimation_sample, images=tmp_path), 32)
    grey = ds.images[ds.ids.index(SAMPLE_IDS[0])]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    opaque = ds.images[ds.ids.index(SAMPLE_IDS[1])]
    assert torch.equal(opaque, colour.images[colour.ids.index(SAMPLE_IDS[1])])  # opaque alpha: unchanged
    cmyk = ds.images[ds.ids.index(SAMPLE_IDS[2])].float()
    assert (cmyk - colour.images[colour.ids.index(SAMPLE_IDS[2])].float()).abs().mean() < 12  # JPEG re-encoding


def test_validation_and_judge_splits_round_trip_and_stay_disjoint(tmp_path):
    from dftnet.config import SyntheticConfig
    from dftnet.data.synth_dataset import build_synthetic_dataset

    ds = build_synthetic_dataset(SyntheticConfig(n_train_identities=2, n_test_identities=2, n_val_identities=2,
                                                 n_judge_identities=2, images_per_identity=2,
                                                 pairs_per_test_identity=2), 32)
    save_dataset(ds, tmp_path / "ds")
    back = load_dataset(tmp_path / "ds")
    assert back.val_ids == ds.val_ids and back.judge_ids == ds.judge_ids
    assert back.val_pairs.pair_ids == ds.val_pairs.pair_ids and torch.equal(back.val_pairs.gt, ds.val_pairs.gt)
    assert torch.equal(back.val_pairs.target_aus, ds.val_pairs.target_aus)
    assert back.split_pairs("val") is back.val_pairs and back.split_pairs("test") is back.pairs
    # a validation id that is also a test id stops with the file and the line
    (tmp_path / "ds" / "val_ids.txt").write_text(ds.test_ids[0] + "\n" + "\n".join(ds.val_ids[1:]) + "\n")
    with pytest.raises(DataError, match=r"val_ids\.txt line 1: id test_p0000_e\d\d is also in the train, test or judge"):
        load_dataset(tmp_path / "ds")
    ds.val_ids = ds.val_ids[:1] + [ds.judge_ids[0]]
    with pytest.raises(DataError, match="dataset judge_ids: id judge_p0000_e00 .* another split"):
        save_dataset(ds, tmp_path / "other")


def test_ingest_folder_with_validation_ids(tmp_path):
    cfg = make_folder(tmp_path, n=10)
    (tmp_path / "train.csv").write_text("\n".join(f"f{i}.{'jpg' if i % 2 else 'png'}" for i in range(5)) + "\n")
    (tmp_path / "val.csv").write_text("f8.png\nf9.jpg\n")
    (tmp_path / "test.csv").write_text("f5.jpg\nf6.png\nf7.jpg\n")
    cfg = dataclasses.replace(cfg, val_ids=str(tmp_path / "val.csv"))
    ds = ingest_folder(cfg, 8)
    assert ds.val_ids == ["f8", "f9"] and ds.test_ids == ["f5", "f6", "f7"] and len(ds.val_pairs) == 4
    assert set(ds.val_pairs.source_ids) == set(ds.val_pairs.target_ids) == {"f8", "f9"}
    for t, aus in zip(ds.pairs.target_ids, ds.pairs.target_aus):
        assert torch.equal(aus, ds.aus[ds.ids.index(t)])
    save_dataset(ds, tmp_path / "out")
    assert load_dataset(tmp_path / "out").val_ids == ["f8", "f9"]
    (tmp_path / "val.csv").write_text("f8.png\nf7.jpg\n")  # a test image listed for validation
    raises_data_error(lambda: ingest_folder(cfg, 8), "val.csv line 2", "also in the train or test ids")
