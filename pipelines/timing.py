"""Stage `timing`: reads data.image_size, model, variants, eval; writes eval/timing.json (every pass,
FLOPs) and metrics/timing.json (DFT-Net over GANimation)."""
import sys

from dftnet import stages
from dftnet.cli import guarded

if __name__ == "__main__":  # guarded: the train stage spawns worker processes
    sys.exit(guarded(lambda: stages.timing(stages.load(), "eval/timing.json", "metrics/timing.json")))
