"""Tests of fcn.inference.export (fcn-export) and fcn.inference.backends: every format against Keras, metadata, errors.

The model is a miniature FCN8s (5 conv/pool blocks of 4 channels, two skip fusions, transposed
convolutions, the in-model Caffe preprocessing, float32 softmax): the same layer types and the same
stride-32 geometry as the real one, exported in about a second per format.
"""

import json
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fcn.cli.common import run_cli  # noqa: E402
from fcn.cli.export import _parse_info, main  # noqa: E402
from fcn.cli.predict import main as predict_main  # noqa: E402
from fcn.core.errors import InputError  # noqa: E402
from fcn.core.images import read_mask  # noqa: E402
from fcn.core.palette import CLASS_NAMES, NUM_CLASSES, PALETTE  # noqa: E402
from fcn.inference import backends  # noqa: E402
from fcn.inference.artefact_metadata import read_metadata  # noqa: E402
from fcn.inference.engine import Predictor  # noqa: E402
from fcn.inference.export import FORMATS, export_model  # noqa: E402
from fcn.inference.parity import (  # noqa: E402
    PARITY_MAX_ABS_DIFF,
    PARITY_MIN_ARGMAX_AGREEMENT,
    ParityAccumulator,
    _compare_probabilities,
)
from fcn.model.builders import CaffePreprocess  # noqa: E402
from fcn.model.checkpoints import ModelInfo  # noqa: E402

MODEL_INFO = {"train_scale": 0.5, "tile_gsd": 1.195, "model_gsd": 2.39}
SUFFIX = {"saved_model": "", "onnx": ".onnx", "litert": ".tflite"}
RUNTIME = {"saved_model": "tensorflow", "onnx": "onnxruntime", "litert": "ai_edge_litert"}


def tiny_fcn(seed=0, channels=4):
    """A miniature FCN8s on raw RGB 0-255 of any size that is a multiple of 32."""

    def init(k):
        return keras.initializers.HeNormal(seed=seed + k)

    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Rescaling(1 / 64)(CaffePreprocess(name="preprocess")(inputs))
    pools = []
    for block in range(5):
        x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", kernel_initializer=init(block))(x)
        x = keras.layers.MaxPooling2D(2)(x)
        pools.append(x)
    score = keras.layers.Conv2D(NUM_CLASSES, 1, kernel_initializer=init(10))(x)
    for k, pool in enumerate((pools[3], pools[2])):
        up = keras.layers.Conv2DTranspose(
            NUM_CLASSES, 4, strides=2, padding="same", use_bias=False, kernel_initializer=init(20 + k)
        )(score)
        score = keras.layers.Add()([up, keras.layers.Conv2D(NUM_CLASSES, 1, kernel_initializer=init(30 + k))(pool)])
    x = keras.layers.Conv2DTranspose(
        NUM_CLASSES, 16, strides=8, padding="same", use_bias=False, kernel_initializer=init(40)
    )(score)
    return keras.Model(inputs, keras.layers.Activation("softmax", dtype="float32")(x), name="tiny_fcn")


def rgb_batch(count, height, width, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, height, width, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_fcn().save(path)
    return path


@pytest.fixture(scope="module")
def model(model_file):
    return keras.saving.load_model(model_file, compile=False)


@pytest.fixture(scope="module")
def artefacts(model, model_file, tmp_path_factory):
    """Each format exported once: {format: ExportResult}."""
    folder = tmp_path_factory.mktemp("export")
    results = {}
    for fmt in FORMATS:
        pytest.importorskip(RUNTIME[fmt])
        results[fmt] = export_model(model, folder / f"tiny{SUFFIX[fmt]}", fmt, model_info=MODEL_INFO, source=model_file)
    return results


# ---------------------------------------------------------------- parity and metadata


@pytest.mark.parametrize("fmt", FORMATS)
def test_artefact_matches_keras_at_two_sizes(artefacts, model, fmt):
    backend = backends.open_backend(artefacts[fmt].path)
    assert backend.num_classes == NUM_CLASSES
    total = ParityAccumulator()
    for shape in ((2, 64, 64), (1, 96, 160)):  # the artefact has no fixed size: two shapes, one not square
        batch = rgb_batch(*shape, seed=shape[1])
        probs = backend(batch)
        assert probs.shape == shape + (NUM_CLASSES,) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
        total.update(model.predict_on_batch(batch), probs)
    parity = total.result()
    assert parity.pixels == 2 * 64 * 64 + 96 * 160
    assert parity.max_abs_diff <= PARITY_MAX_ABS_DIFF
    assert parity.argmax_agreement >= PARITY_MIN_ARGMAX_AGREEMENT


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_travels_with_the_artefact(artefacts, fmt):
    result = artefacts[fmt]
    info = read_metadata(result.path)
    assert info == json.loads(json.dumps(result.metadata))  # round trip, JSON types
    assert info["model_info"] == MODEL_INFO
    assert info["class_names"] == list(CLASS_NAMES)
    assert info["class_colors"] == PALETTE.tolist()
    assert info["model_name"] == "tiny_fcn" and info["format"] == fmt
    assert info["input"]["value_range"] == [0, 255] and info["input"]["side_multiple"] == 32
    backend = backends.open_backend(result.path)
    assert backend.metadata == info
    assert backend.info == ModelInfo.from_dict(MODEL_INFO)  # the engine's default scale comes from it
    if fmt == "onnx":
        assert result.metadata_path is None  # inside the file: metadata_props
        import onnx

        props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
        assert json.loads(props["class_names"]) == list(CLASS_NAMES)
    else:
        assert result.metadata_path == result.path.with_name(result.path.name + ".json")


def test_a_mixed_precision_model_is_exported_in_float32(model, tmp_path):
    from fcn.model.checkpoints import with_precision

    pytest.importorskip("onnxruntime")
    half = with_precision(model, "mixed_bfloat16")
    assert half.get_layer(index=3).compute_dtype == "bfloat16"
    result = export_model(half, tmp_path / "m.onnx", "onnx")
    batch = rgb_batch(1, 64, 96)
    assert _compare_probabilities(model.predict_on_batch(batch), backends.open_backend(result.path)(batch)).ok


def test_onnx_input_and_output_names(artefacts):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(artefacts["onnx"].path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "rgb" and inp.type == "tensor(float)" and inp.shape[-1] == 3
    assert out.name == "probabilities" and out.shape[-1] == NUM_CLASSES
    assert all(not isinstance(d, int) for d in inp.shape[:3])  # batch, height and width are free


def test_compare_probabilities_counts_disagreements():
    reference = np.zeros((1, 2, 5, 3), np.float32)
    reference[..., 0] = 1.0
    other = reference.copy()
    other[0, 1, 4] = [0.2, 0.8, 0.0]  # one pixel of 10 changes class, by 0.8
    parity = _compare_probabilities(reference, other)
    assert parity.pixels == 10 and parity.argmax_agreement == pytest.approx(0.9)
    assert parity.max_abs_diff == pytest.approx(0.8) and not parity.ok
    assert _compare_probabilities(reference, reference).ok


# ---------------------------------------------------------------- the engine with a backend


def test_predictor_runs_an_onnx_backend_like_the_keras_model(artefacts, model):
    backend = backends.open_backend(artefacts["onnx"].path)
    image = rgb_batch(1, 150, 110, seed=3)[0].astype(np.uint8)  # padded, scaled and windowed
    assert Predictor(backend).scale == MODEL_INFO["train_scale"]  # the artefact's own scale by default
    for kwargs in (
        {"scale": 1.0},
        {"scale": 1.0, "tta": True},
        {"scale": 0.7, "tile": 64, "overlap": 16, "batch_size": 3},
    ):
        expected = Predictor(model, **kwargs).predict_probs(image)
        got = Predictor(backend, **kwargs).predict_probs(image)
        assert got.shape == image.shape[:2] + (NUM_CLASSES,)
        assert np.abs(got - expected).max() <= PARITY_MAX_ABS_DIFF, kwargs


def test_predict_cli_with_an_onnx_model(artefacts, model, model_file, tmp_path):
    from PIL import Image

    images = tmp_path / "tiles"
    images.mkdir()
    for i, (h, w) in enumerate([(64, 64), (70, 90)]):
        Image.fromarray(rgb_batch(1, h, w, seed=i)[0].astype(np.uint8)).save(images / f"{i:04d}_sat.png")
    keras_out, onnx_out = tmp_path / "keras", tmp_path / "onnx"
    # The .keras file here carries no ModelInfo (scale 1) while the artefact records 0.5: compare at scale 0.5.
    argv = ["--input", str(images), "-q", "--scale", "0.5"]
    assert run_cli(predict_main, ["--model", str(model_file), "--output", str(keras_out), *argv]) == 0
    argv = [
        "--model",
        str(artefacts["onnx"].path),
        "--input",
        str(images),
        "--output",
        str(onnx_out),
        "-q",
        "--scale",
        "0.5",
        "--tta",
    ]
    assert run_cli(predict_main, argv) == 0
    assert run_cli(predict_main, argv[:-1] + ["--output", str(tmp_path / "plain")]) == 0
    keras_tta = Predictor(model, scale=0.5, tta=True)
    for name in ("0000_mask.png", "0001_mask.png"):
        agreement = np.mean(read_mask(keras_out / name) == read_mask(tmp_path / "plain" / name))
        assert agreement >= PARITY_MIN_ARGMAX_AGREEMENT
        # The ONNX --tta masks are the Keras model's TTA classes wherever those are not near-ties
        # (random weights give near-ties, where a 1e-6 difference may flip the argmax).
        probs = keras_tta.predict_probs(np.asarray(Image.open(images / name.replace("_mask", "_sat"))))
        top2 = np.sort(probs, axis=-1)[..., -2:]
        clear = top2[..., 1] - top2[..., 0] > 1e-3
        onnx_mask = read_mask(onnx_out / name)
        assert onnx_mask.shape == probs.shape[:2] and clear.mean() > 0.5
        np.testing.assert_array_equal(onnx_mask[clear], np.argmax(probs, axis=-1)[clear])


def test_predict_cli_refuses_a_precision_for_an_exported_model(artefacts, tmp_path, capsys):
    argv = [
        "--model",
        str(artefacts["onnx"].path),
        "--input",
        str(tmp_path),
        "--output",
        str(tmp_path / "o"),
        "--precision",
        "mixed_bfloat16",
    ]
    assert run_cli(predict_main, argv) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


# ---------------------------------------------------------------- the command and its errors


def test_export_command_writes_and_checks_the_artefact(model_file, tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    from fcn.model.checkpoints import save_checkpoint

    checkpoint = tmp_path / "best.keras"  # a checkpoint carries its run's scale and ground resolution
    save_checkpoint(keras.saving.load_model(model_file), checkpoint, {"epoch": 1}, ModelInfo("tiny", 0.5, 1.2))
    output = tmp_path / "out" / "model.tflite"  # the folder is created
    argv = ["--model", str(checkpoint), "--format", "litert", "--output", str(output), "--info", "note=demo"]
    assert run_cli(main, argv) == 0
    out = capsys.readouterr().out
    assert "exported" in out and "parity vs Keras" in out and "(ok)" in out
    stored = read_metadata(output)["model_info"]
    assert ModelInfo.from_dict(stored) == ModelInfo("tiny", 0.5, 1.2) and stored["model_gsd"] == pytest.approx(2.4)
    assert stored["note"] == "demo"
    # Exporting again replaces the artefact; no temporary file is left behind.
    assert run_cli(main, argv + ["--no-check"]) == 0
    assert sorted(p.name for p in output.parent.iterdir()) == ["model.tflite", "model.tflite.json"]


@pytest.mark.parametrize(
    "make_argv, message",
    [
        (
            lambda tmp, model: [
                "--model",
                str(tmp / "nope.keras"),
                "--format",
                "onnx",
                "--output",
                str(tmp / "m.onnx"),
            ],
            "nope.keras",
        ),
        (
            lambda tmp, model: ["--model", str(tmp), "--format", "onnx", "--output", str(tmp / "m.onnx")],
            "run directory",
        ),
        (lambda tmp, model: ["--model", str(model), "--format", "onnx", "--output", str(tmp)], "is a directory"),
        (
            lambda tmp, model: ["--model", str(model), "--format", "saved_model", "--output", str(tmp)],
            "not a SavedModel",
        ),
        (
            lambda tmp, model: [
                "--model",
                str(model),
                "--format",
                "onnx",
                "--output",
                str(tmp / "m.onnx"),
                "--info",
                "scale",
            ],
            "KEY=VALUE",
        ),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(model_file, tmp_path, capsys, make_argv, message):
    (tmp_path / "something").write_text("x")  # tmp_path: a non-empty folder that is no run directory
    assert run_cli(main, make_argv(tmp_path, model_file)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
    assert not (tmp_path / "m.onnx").exists()


def test_missing_export_package_is_reported_with_its_name(model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx now raises ImportError
    with pytest.raises(InputError, match="tf2onnx.*pip install"):
        export_model(model, tmp_path / "m.onnx", "onnx")
    assert list(tmp_path.iterdir()) == []


def test_backend_errors(artefacts, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="no such"):
        backends.OnnxBackend(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx file")
    with pytest.raises(InputError, match="cannot load ONNX model") as info:
        backends.OnnxBackend(corrupt)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="not an exported model"):
        backends.open_backend(tmp_path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(InputError, match="onnxruntime"):
        backends.OnnxBackend(artefacts["onnx"].path)


def test_read_metadata_of_a_foreign_artefact(tmp_path):
    with pytest.raises(InputError, match="no such"):
        read_metadata(tmp_path / "x.tflite")
    (tmp_path / "x.tflite").write_bytes(b"")
    with pytest.raises(InputError, match="no fcn metadata"):
        read_metadata(tmp_path / "x.tflite")
    (tmp_path / "x.tflite.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not a JSON object"):
        read_metadata(tmp_path / "x.tflite")


def test_parse_info_reads_json_values():
    assert _parse_info(["train_scale=0.5", "name=base s0", "gsd=[1.2, 2.4]", "empty="]) == {
        "train_scale": 0.5,
        "name": "base s0",
        "gsd": [1.2, 2.4],
        "empty": "",
    }
