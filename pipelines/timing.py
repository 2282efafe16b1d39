"""Stage `timing`: reads data.image_size, model, variants, eval; writes metrics/timing.json."""
import sys

from dftnet import stages
from dftnet.cli import guarded

if __name__ == "__main__":  # guarded: the train stage spawns worker processes
    sys.exit(guarded(lambda: stages.timing(stages.load(), "metrics/timing.json")))
