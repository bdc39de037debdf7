#!/usr/bin/env python
"""Train an FCN: see `python scripts/train.py --help` (the command is fcn/cli/train.py, the library fcn/training)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from fcn.cli.train import cli

if __name__ == "__main__":
    cli()
