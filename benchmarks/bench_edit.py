"""How ``dftnet edit`` treats photos: quality of the two pastes, and time per photo.

    python benchmarks/bench_edit.py --photos ../shared/data/faces-gray/images [--run models/real-faces] \
        [--n 16] [--params params-real.yaml] [--expression happiness --strength 4] [--colour auto] \
        [--strips docs/edit] [--timing]

Any folder of photos works (the first ``--n`` files, sorted by name; the largest face of each).
``--run``: a run folder or an exported generator (default: the shipped one); the AU proxies'
calibration comes from ``--data-root``, else from the run folder's ``meta.json``, else ``data.root``. Per photo and
paste (``plain``: the generator's rendering; ``change``: only its change, the default), inside
the feathered paste mask (weight >= 0.5):

- **sharpness**: variance of the Laplacian of the grey image, edited / original (1 = as sharp);
- **saturation change**: mean HSV saturation (0-255) edited minus original;
- **outside kept**: every pixel where the mask is 0 bit-identical to the photo;
- **AU move**: the MediaPipe AU proxies' raise progress toward the asked AUs
  (:func:`dftnet.eval.response.progress`: 1 = the whole asked change, 0 = none), read off the
  edited photo's aligned face against the original's.

Prints a Markdown table (per photo and the means) on stdout; ``--strips`` writes
``<photo>_<expression>_pastes.png`` (original | plain | change) for the first four photos.
``--timing`` adds the seconds per photo of each part (machine- and load-dependent).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dftnet import commands, stages
from dftnet.data.faces import CANONICAL, Landmarker, paste_back, paste_mask, similarity
from dftnet.edit import (PASTES, SHIPPED, Target, edit_photos, find, generate, load_generator, luminance, photo_paths,
                         resolve_colour)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def photo_mask(photo: np.ndarray, face, size: int) -> np.ndarray:
    """The paste mask's weight in photo coordinates (as :func:`dftnet.data.faces.paste_back` warps it)."""
    import cv2

    m = similarity(face.eyes_mouth, CANONICAL * size)
    h, w = photo.shape[:2]
    return cv2.warpAffine(paste_mask(size), m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def sharpness(rgb: np.ndarray, inside: np.ndarray) -> float:
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F)[inside].var())


def saturation(rgb: np.ndarray, inside: np.ndarray) -> float:
    import cv2

    return float(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1][inside].mean())


def au_move(reader, landmarker, edited: np.ndarray, source_aus: np.ndarray, goal: np.ndarray, size: int) -> float:
    """Raise progress of the asked AUs read off the edited photo (NaN: no face found or nothing asked)."""
    import torch

    from dftnet.data.faces import align, find_faces
    from dftnet.eval.response import progress

    faces = find_faces(landmarker, edited)
    if not faces:
        return float("nan")
    face = max(faces, key=lambda f: float(np.ptp(f.eyes_mouth[:, 0])))
    read = reader(align(edited, face, size)[None])
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32)[None])  # noqa: E731
    return progress(t(read[0]), t(source_aus), t(goal), t(source_aus))["raise"]["mean"]


def quality(args, params, G, run, reader, lm, paths) -> None:
    size = run.image_size
    found = find(paths, lm, size, "largest")
    target = Target(expression=args.expression, strength=args.strength)
    colour = resolve_colour(args.colour, args.data_root or params.data.root)
    crops = np.stack([f.crop for f in found])
    seen = luminance(crops) if colour == "luminance" else crops
    source = reader(seen)
    goal = np.stack([target.resolve(s, None) for s in source]).astype(np.float32)
    rows, outs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for paste in PASTES:
            edit_photos(paths, G, size, target, Path(tmp) / paste, reader, lm, face="largest", paste=paste,
                        colour=colour)
            outs[paste] = [np.asarray(__import__("PIL.Image").Image.open(Path(tmp) / paste / f"{p.stem}_edit.png"))
                           for p in paths]
    for i, f in enumerate(found):
        mask = photo_mask(f.photo, f.face, size)
        inside, outside = mask >= 0.5, mask == 0
        row = {"photo": f.path.name}
        for paste in PASTES:
            e = outs[paste][i]
            row[paste] = {"sharpness": sharpness(e, inside) / max(sharpness(f.photo, inside), 1e-9),
                          "saturation": saturation(e, inside) - saturation(f.photo, inside),
                          "kept": bool((e[outside] == f.photo[outside]).all()),
                          "au_move": au_move(reader, lm, e, source[i], goal[i], size)}
        rows.append(row)
    print(f"{len(rows)} photos from {args.photos}; run {args.run} ({size} px); target {args.expression} at "
          f"{args.strength:g}; colour: {colour}\n")
    print("| photo | paste | sharpness (edit / original) | saturation change | outside kept | AU move (raise progress) |")
    print("|---|---|---|---|---|---|")
    fmt = lambda r: (f"{r['sharpness']:.2f} | {r['saturation']:+.2f} | {'yes' if r['kept'] else 'NO'} "  # noqa: E731
                     f"| {r['au_move']:+.2f}")
    for row in rows:
        for paste in PASTES:
            print(f"| {row['photo']} | {paste} | {fmt(row[paste])} |")
    for paste in PASTES:
        mean = {k: float(np.nanmean([r[paste][k] for r in rows])) for k in ("sharpness", "saturation", "au_move")}
        kept = sum(r[paste]["kept"] for r in rows)
        print(f"| **mean** | {paste} | {mean['sharpness']:.2f} | {mean['saturation']:+.2f} | {kept}/{len(rows)} "
              f"| {mean['au_move']:+.2f} |")
    if args.strips:
        from PIL import Image

        out = Path(args.strips)
        out.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(found[:4]):
            strip = np.concatenate([f.photo] + [outs[p][i] for p in PASTES], axis=1)
            Image.fromarray(strip).save(out / f"{f.path.stem}_{args.expression}_pastes.png")
        print(f"\nstrips (original | {' | '.join(PASTES)}) in {out}", file=sys.stderr)


def timing(args, params, G, run, reader, lm, paths) -> None:
    n, size = len(paths), run.image_size
    target = Target(expression=args.expression, strength=args.strength)
    found = []
    t_find = seconds(lambda: found.extend(find(paths, lm, size, "largest")))
    crops = np.stack([f.crop for f in found])
    aus = np.zeros((n, 17), np.float32)
    t_read = seconds(lambda: reader(crops))
    generate(G, crops[:2], aus[:2], 2, "cpu")  # warm-up
    t_gen1 = seconds(lambda: generate(G, crops, aus, 1, "cpu"))
    t_genb = seconds(lambda: generate(G, crops, aus, args.batch_size, "cpu"))
    t_paste = seconds(lambda: [paste_back(f.photo, f.crop, f.face) for f in found])
    with tempfile.TemporaryDirectory() as tmp:
        whole = {b: seconds(lambda b=b: edit_photos(paths, G, size, target, Path(tmp) / str(b), reader, lm,
                                                     face="largest", batch_size=b)) for b in (1, args.batch_size)}
    ms = lambda s: f"{1000 * s / n:.1f} ms"  # noqa: E731
    print(f"\n{n} photos, {size} px model, {params.compute.threads} threads")
    print(f"find + align (MediaPipe): {ms(t_find)} per photo")
    print(f"read source AUs: {ms(t_read)} per photo")
    print(f"generator: batch 1 {ms(t_gen1)}, batch {args.batch_size} {ms(t_genb)} per photo")
    print(f"plain paste back: {ms(t_paste)} per photo")
    print(f"whole edit (change paste: find, read, generate twice, paste, write PNG): batch 1 {ms(whole[1])}, "
          f"batch {args.batch_size} {ms(whole[args.batch_size])} per photo")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(SHIPPED))
    ap.add_argument("--photos", required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--params", default="params-real.yaml")
    ap.add_argument("--data-root", default=None, help="prepared photos dataset whose AU proxies read the faces")
    ap.add_argument("--expression", default="happiness")
    ap.add_argument("--strength", type=float, default=4.0)
    ap.add_argument("--colour", default="auto", choices=("auto", "luminance", "rgb"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--strips", default=None, help="folder for original | plain | change strips of 4 photos")
    ap.add_argument("--timing", action="store_true")
    args = ap.parse_args()
    params = stages.load(args.params)
    paths = photo_paths([args.photos])[: args.n]
    G, run = load_generator(args.run)
    if args.data_root is None and (Path(args.run) / "meta.json").is_file():
        args.data_root = args.run
    reader, close = commands.photo_au_reader(params, args.data_root, None, run.image_size, "cpu")
    if reader is None:
        sys.exit("error: no AU reader: pass --data-root with a prepared photos dataset (its MediaPipe AU proxies)")
    try:
        with Landmarker(params.data.photos.landmarker, max_faces=8) as lm:
            quality(args, params, G, run, reader, lm, paths)
            if args.timing:
                timing(args, params, G, run, reader, lm, paths)
    finally:
        if close:
            close()


if __name__ == "__main__":
    main()
