"""benchmarks/grey_colour.py: the colour an edit puts into a grey photo, on hand-built images."""
import importlib.util
from pathlib import Path

import numpy as np
import torch

spec = importlib.util.spec_from_file_location("grey_colour", Path(__file__).resolve().parents[1] / "benchmarks" / "grey_colour.py")
grey_colour = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grey_colour)


def test_a_grey_image_has_no_colour_and_one_red_pixel_is_counted_once():
    images = torch.full((2, 3, 4, 5), 128, dtype=torch.uint8)
    images[1, 0, 2, 3] = 255  # one pixel of the second image: (255, 128, 128)
    images[1, 2, 0, 0] = 133  # a faint tint, under the visible threshold (5/255 < 8/255)
    out = grey_colour.colour_per_pair(images)
    assert np.allclose(out["chroma"], [0.0, (127 / 255 + 5 / 255) / 20])
    assert np.allclose(out["coloured_share"], [0.0, 1 / 20])
