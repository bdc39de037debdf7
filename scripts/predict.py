"""Predict masks for a folder of tiles: python scripts/predict.py --model RUN_DIR --input DIR --output DIR"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fcn.cli.predict import cli  # noqa: E402

if __name__ == "__main__":
    cli()
