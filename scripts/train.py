#!/usr/bin/env python
"""Train an FCN: see `python scripts/train.py --help` (the logic lives in fcn/train.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from fcn.training.trainer import cli

if __name__ == "__main__":
    cli()
