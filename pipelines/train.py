"""Stage `train@<variant>`: reads data.image_size, model, train, seeds, variants.<variant>;
writes runs/<variant>/seed<k>/ (full-state checkpoint, config, per-step log) and logs/<variant>.csv."""
import sys

from dftnet import stages
from dftnet.runtime.errors import guarded

if __name__ == "__main__":  # guarded: the train stage spawns worker processes
    sys.exit(guarded(lambda: stages.train_variant(stages.load(), sys.argv[1], "runs")))
