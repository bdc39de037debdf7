"""Export a trained model: python scripts/export.py --model RUN_DIR --format onnx --output model.onnx"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fcn.cli.export import cli  # noqa: E402

if __name__ == "__main__":
    cli()
