"""Prediction with an exported ONNX model in a process where TensorFlow and Keras cannot be imported.

The model is a hand-built ONNX graph (1x1 convolution + softmax, with fcn-export's metadata: trained
at scale 0.5), so that making it needs neither TensorFlow nor tf2onnx.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from fcn.core.palette import NUM_CLASSES  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # rasterio's from_origin
# Runs first in the child: any import of tensorflow, keras or tf2onnx raises.
BLOCKER = """
import sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf2onnx", "tf_keras"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, NoTensorFlow())
"""


def pixel_onnx(path: Path, seed: int = 0) -> Path:
    """NHWC RGB 0-255 -> NHWC softmax of a random 1x1 convolution, as fcn-export lays models out."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array((rng.normal(size=(NUM_CLASSES, 3, 1, 1)) / 40).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(size=NUM_CLASSES).astype(np.float32), "b")
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs_nchw"], axis=1),
        helper.make_node("Transpose", ["probs_nchw"], ["probs"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "pixel",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["b", "h", "w", 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["b", "h", "w", NUM_CLASSES])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "model_info", json.dumps({"model": "pixel", "train_scale": 0.5})
    onnx.save(model, str(path))
    return path


def run_without_tensorflow(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = BLOCKER + code + '\nassert not {"tensorflow", "keras"} & set(sys.modules), "TensorFlow was imported"\n'
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )


def test_predictor_and_scenes_run_an_onnx_model_without_tensorflow(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    model = pixel_onnx(tmp_path / "pixel.onnx")
    rgb = np.random.default_rng(1).integers(0, 256, (150, 210, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", rgb)
    profile = dict(driver="GTiff", height=150, width=210, count=3, dtype="uint8", crs="EPSG:32633")
    with rasterio.open(tmp_path / "scene.tif", "w", transform=from_origin(5e5, 4e6, 1, 1), **profile) as dst:
        dst.write(rgb.transpose(2, 0, 1))
    code = f"""
import numpy as np
from fcn.inference.backends import open_backend
from fcn.inference.engine import Predictor
from fcn.inference import geo
from fcn.inference.scenes import predict_scene
predictor = Predictor(open_backend({str(model)!r}), tile=64, overlap=16)  # scale 0.5 from the metadata
rgb = np.load("rgb.npy")
classes = predictor.predict_classes(rgb)
assert predictor.scale == 0.5 and classes.shape == (150, 210)
np.save("classes.npy", classes)
with geo.open_scene("scene.tif") as scene:
    result = predict_scene(predictor.replace(scale=0.6), scene, "mask.tif", whole_max_pixels=0, verbose=1)
assert not result.whole and result.windows > 1
"""
    done = run_without_tensorflow(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    classes = np.load(tmp_path / "classes.npy")
    assert len(np.unique(classes)) > 1
    with rasterio.open(tmp_path / "mask.tif") as src:
        assert src.read(1).shape == (150, 210)


def test_the_predict_command_runs_an_onnx_model_without_tensorflow(tmp_path):
    model = pixel_onnx(tmp_path / "pixel.onnx")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for k in range(2):
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (96, 80, 3), dtype=np.uint8)).save(
            inputs / f"{k:04d}_sat.png"
        )
    code = f"""
from fcn.cli.predict import cli
sys.argv = ["fcn-predict", "--model", {str(model)!r}, "--input", "in", "--output", "out", "--scale", "0.7"]
try:
    cli()
except SystemExit as stop:
    assert not stop.code, stop.code
"""
    done = run_without_tensorflow(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    masks = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert masks == ["0000_mask.png", "0001_mask.png"]
    assert Image.open(tmp_path / "out" / "0000_mask.png").size == (80, 96)
