"""Stage `evaluate@<variant>`: reads seeds, eval; writes eval/<variant>/ and metrics/<variant>.json (headline means)."""
import sys

from dftnet import stages
from dftnet.runtime.errors import guarded

if __name__ == "__main__":  # guarded: the train stage spawns worker processes
    sys.exit(guarded(lambda: stages.evaluate_variant(stages.load(), sys.argv[1], "runs", "judge", "eval")))
