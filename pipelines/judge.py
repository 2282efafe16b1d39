"""Stage `judge`: reads data.image_size, judge; writes judge/ (weights, report.json) and metrics/judge.json."""
import sys

from dftnet import stages
from dftnet.runtime.errors import guarded

if __name__ == "__main__":  # guarded: the train stage spawns worker processes
    sys.exit(guarded(lambda: stages.train_judge(stages.load(), "judge")))
