"""Stage `report`: reads variants, seeds; writes the tables, claims and figure grids in reports/."""
import sys

from dftnet import stages
from dftnet.runtime.errors import guarded

if __name__ == "__main__":  # guarded: the train stage spawns worker processes
    sys.exit(guarded(lambda: stages.report(stages.load(), "runs", "eval", "judge", "reports")))
