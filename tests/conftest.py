"""Shared fixtures. Material under ../shared is reached by path and skipped when absent,
so a fresh clone elsewhere still passes its tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared folder: $DFTNET_SHARED, else ``shared/`` beside the project root."""
    return Path(os.environ.get("DFTNET_SHARED") or Path(__file__).parents[1].parent / "shared")


def shared_or_skip(path: Path, what: str) -> Path:
    """``path`` in the shared folder, or the test skipped naming what is missing (a clone without it)."""
    if not path.is_file():
        pytest.skip(f"{what} not found at {path}")
    return path


@pytest.fixture(scope="session")
def ganimation_sample(shared_dir: Path) -> Path:
    """GANimation's sample_dataset (4 EmotioNet crops, aus_openface.pkl, id lists)."""
    path = shared_dir / "data" / "ganimation-sample"
    shared_or_skip(path / "aus_openface.pkl", "GANimation sample")
    return path


@pytest.fixture(scope="session")
def faces_gray(shared_dir: Path) -> Path:
    """The 11,794 grey face photos with emotion labels."""
    path = shared_dir / "data" / "faces-gray"
    shared_or_skip(path / "labels.csv", "faces-gray")
    return path


@pytest.fixture(scope="session")
def bundle(shared_dir: Path) -> Path:
    """MediaPipe's Face Landmarker bundle (detector, landmarks, blendshapes)."""
    return shared_or_skip(shared_dir / "models" / "face_landmarker.task", "Face Landmarker bundle")


# numpy's OpenBLAS threads fight torch's on a 2-core machine (FID's 2048 x 2048 linear
# algebra slows down five-fold); tests use tiny tensors, so one thread each is fastest.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture
def one_thread():
    """Tiny tensors: intra-op threads only add overhead, and thrash when the cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
