"""Stage `prepare`: reads `data`; writes the canonical dataset folder `data.root`."""
import sys

from dftnet import stages
from dftnet.runtime.errors import guarded

if __name__ == "__main__":  # guarded: the train stage spawns worker processes
    sys.exit(guarded(lambda: stages.prepare(stages.load())))
