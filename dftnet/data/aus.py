"""The Action Unit vocabulary: OpenFace's 17 intensity AUs in GANimation's order."""

AU_NAMES: tuple[str, ...] = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
)
N_AUS = len(AU_NAMES)
AU_MAX = 5.0  # OpenFace writes intensities in [0, 5]; networks see them divided by AU_MAX
AU_INDEX = {name: i for i, name in enumerate(AU_NAMES)}
