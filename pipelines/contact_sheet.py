"""Stage `contact_sheet`: reads `data.synthetic.seed`; writes reports/synthetic_contact_sheet.png."""
import sys

from dftnet import stages
from dftnet.runtime.errors import guarded

if __name__ == "__main__":  # guarded: the train stage spawns worker processes
    sys.exit(guarded(lambda: stages.contact_sheet(stages.load(), "reports/synthetic_contact_sheet.png")))
