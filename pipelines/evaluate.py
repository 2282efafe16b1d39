"""Stage `evaluate@<variant>`: reads seeds, eval; writes eval/<variant>/ and metrics/<variant>.json."""
import sys

from dftnet import stages
from dftnet.cli import guarded

sys.exit(guarded(lambda: stages.evaluate_variant(stages.load(), sys.argv[1], "runs", "judge", "eval")))
