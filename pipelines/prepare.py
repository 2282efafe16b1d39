"""Stage `prepare`: reads `data`; writes the canonical dataset folder `data.root`."""
import sys

from dftnet import stages
from dftnet.cli import guarded

sys.exit(guarded(lambda: stages.prepare(stages.load())))
