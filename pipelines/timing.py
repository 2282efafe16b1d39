"""Stage `timing`: reads data.image_size, model, variants, eval; writes timing/timing.json (every pass,
FLOPs), metrics/timing.json (DFT-Net over GANimation), reports/timing.md and reports/results_timing.csv
(claim 3 and the timing table): every file a repro writes from the clock."""
import sys

from dftnet import stages
from dftnet.runtime.errors import guarded

if __name__ == "__main__":  # guarded: the train stage spawns worker processes
    sys.exit(guarded(lambda: stages.timing(stages.load(), "timing/timing.json", "metrics/timing.json", "reports")))
