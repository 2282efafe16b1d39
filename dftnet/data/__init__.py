"""Data: the synthetic FACS face renderer and the on-disk dataset format shared with real data."""
