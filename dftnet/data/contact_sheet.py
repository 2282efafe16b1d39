"""The synthetic faces' contact sheet: every AU swept over its range, per identity, to check
the renderer at a glance (``reports/synthetic_contact_sheet.png``)."""

from __future__ import annotations

import torch

from dftnet.runtime import atomic
from dftnet.data.aus import AU_NAMES, N_AUS
from dftnet.data.synth import AU_MEANINGS, render_uint8, sample_identities


def write_contact_sheet(path, size: int = 128, n_identities: int = 3, steps=(0, 1.25, 2.5, 3.75, 5.0), seed: int = 0) -> None:
    """A PNG to check the renderer at a glance: one row per AU, swept over ``steps``, per identity.

    Columns are grouped by identity (test identities of ``seed``); each row is labelled with
    the AU and its meaning. Written atomically (:mod:`dftnet.runtime.atomic`).
    """
    from PIL import Image, ImageDraw, ImageFont

    ident = sample_identities(n_identities, seed, "test")
    n_steps, gap, label_w, head_h = len(steps), max(size // 8, 6), 12 * size // 8 + 60, 40
    aus = torch.zeros(N_AUS, n_identities, n_steps, N_AUS)
    for j in range(N_AUS):
        aus[j, :, :, j] = torch.tensor(steps, dtype=torch.float32)
    who = torch.arange(n_identities).view(1, -1, 1).expand(N_AUS, n_identities, n_steps).reshape(-1)
    faces = render_uint8(ident.take(who), aus.reshape(-1, N_AUS), size).view(N_AUS, n_identities, n_steps, 3, size, size)

    group_w = n_steps * size
    width = label_w + n_identities * group_w + (n_identities - 1) * gap
    sheet = Image.new("RGB", (width, head_h + N_AUS * size), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(ImageFont, max(12, size // 8))
    for p in range(n_identities):
        x0 = label_w + p * (group_w + gap)
        draw.text((x0 + 2, 2), f"identity {p} (test, seed {seed})", fill="black", font=font)
        for k, v in enumerate(steps):
            draw.text((x0 + k * size + 2, head_h // 2), f"{v:g}", fill="black", font=font)
    for j, name in enumerate(AU_NAMES):
        y0 = head_h + j * size
        draw.text((4, y0 + size // 2 - 2 * font.size // 2), name, fill="black", font=font)
        draw.text((4, y0 + size // 2), AU_MEANINGS[name], fill="black", font=font)
        for p in range(n_identities):
            row = faces[j, p].permute(2, 0, 3, 1).reshape(size, group_w, 3).numpy()
            sheet.paste(Image.fromarray(row), (label_w + p * (group_w + gap), y0))
    atomic.write_with(path, lambda tmp: sheet.save(tmp, format="PNG"))


def _font(image_font, size: int):
    try:
        return image_font.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return image_font.load_default()
