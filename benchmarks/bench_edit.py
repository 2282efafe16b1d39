"""Time per photo of ``dftnet edit`` on this machine, at batch 1 and batched.

    python benchmarks/bench_edit.py --run real/runs/dftnet/seed0 --photos ../shared/data/faces-gray/images \
        [--n 32] [--params params-real.yaml] [--batch-size 32]

Prints (stdout) the seconds per photo of each part: finding and aligning the face (MediaPipe),
reading the source's AUs (the MediaPipe AU proxies of the params' photos dataset), the
generator at batch 1 and batched, and pasting back; and the whole command at both batch
sizes. Not a test: timings depend on the machine and its load.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from dftnet import stages
from dftnet.checkpoints import load_trained
from dftnet.data.faces import Landmarker, paste_back
from dftnet.edit import Target, edit_photos, find, generate, photo_paths


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--photos", required=True)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--params", default="params-real.yaml")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    params = stages.load(args.params)
    paths = photo_paths([args.photos])[: args.n]
    G, _, run = load_trained(args.run)
    reader, close = stages.au_reader(params, None, None, run.image_size, "cpu")
    target = Target(expression="happiness", strength=4.0)
    n = len(paths)
    with Landmarker(params.data.photos.landmarker, max_faces=8) as lm:
        found = []
        t_find = seconds(lambda: found.extend(find(paths, lm, run.image_size, "largest")))
        crops = np.stack([f.crop for f in found])
        aus = np.zeros((n, 17), np.float32)
        t_read = seconds(lambda: reader(crops)) if reader else float("nan")
        generate(G, crops[:2], aus[:2], 2, "cpu")  # warm-up
        t_gen1 = seconds(lambda: generate(G, crops, aus, 1, "cpu"))
        t_genb = seconds(lambda: generate(G, crops, aus, args.batch_size, "cpu"))
        t_paste = seconds(lambda: [paste_back(f.photo, f.crop, f.face) for f in found])
        with tempfile.TemporaryDirectory() as tmp:
            whole = {b: seconds(lambda b=b: edit_photos(paths, G, run.image_size, target, Path(tmp) / str(b), reader, lm,
                                                         face="largest", batch_size=b)) for b in (1, args.batch_size)}
    if close:
        close()
    ms = lambda s: f"{1000 * s / n:.1f} ms"  # noqa: E731
    print(f"{n} photos, {run.image_size} px model, {params.compute.threads} threads")
    print(f"find + align (MediaPipe): {ms(t_find)} per photo")
    print(f"read source AUs (MediaPipe AU proxies): {ms(t_read)} per photo")
    print(f"generator: batch 1 {ms(t_gen1)}, batch {args.batch_size} {ms(t_genb)} per photo")
    print(f"paste back: {ms(t_paste)} per photo")
    print(f"whole edit (find, read, generate, paste, write PNG): batch 1 {ms(whole[1])}, "
          f"batch {args.batch_size} {ms(whole[args.batch_size])} per photo")


if __name__ == "__main__":
    main()
