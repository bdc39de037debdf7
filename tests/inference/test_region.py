"""Region jobs of fcn-predict: --cluster on a dask LocalCluster, --resume, --mosaic, --polygons, region --stats.

One LocalCluster of 2 worker processes serves the whole module (each test joins it by address, as a
user joins a running scheduler). The model is a hand-built ONNX graph (3x3 convolution, ReLU, 1x1
convolution, softmax; trained at 0.5 m/px by its metadata), so the workers never import TensorFlow.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcn.cli.common import run_cli
from fcn.cli.predict import main
from fcn.core.palette import CLASS_NAMES, NUM_CLASSES, PALETTE

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
rasterio = pytest.importorskip("rasterio")
distributed = pytest.importorskip("distributed")

from rasterio.crs import CRS  # noqa: E402
from rasterio.transform import Affine  # noqa: E402

from helpers import SCENE_CRS, landscape, rgb_tif  # noqa: E402

UTM = CRS.from_user_input(SCENE_CRS)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::PendingDeprecationWarning")


def tiny_onnx(path: Path, seed: int = 0) -> Path:
    """NHWC RGB 0-255 -> NHWC softmax of conv3x3(8) + ReLU + conv1x1(7), laid out as fcn-export lays models."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    init = [
        numpy_helper.from_array((rng.normal(size=(8, 3, 3, 3)) / 60).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=8).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(size=(NUM_CLASSES, 8, 1, 1)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(size=NUM_CLASSES).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs_nchw"], axis=1),
        helper.make_node("Transpose", ["probs_nchw"], ["probs"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["b", "h", "w", 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["b", "h", "w", NUM_CLASSES])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "model_info", json.dumps({"model": "tiny", "train_scale": 1.0, "tile_gsd": 0.5})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster of 2 worker processes for the module: its scheduler address."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local_cluster:
        yield local_cluster.scheduler_address


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A model, 3 GeoTIFF scenes side by side (96x128, 0.5 m) and 5 JPEG tiles of two sizes."""
    root = tmp_path_factory.mktemp("region")
    model = tiny_onnx(root / "tiny.onnx")
    inputs = root / "in"
    inputs.mkdir()
    for index in range(3):
        rgb_tif(inputs / f"s{index}.tif", landscape(96, 128, index), origin=(500_000 + 64.0 * index, 4_000_000))
    for index in range(5):
        size = (64, 64) if index < 3 else (80, 96)
        Image.fromarray(landscape(*size, 10 + index)).save(inputs / f"{index:04d}_sat.jpg", quality=90)
    return model, inputs


def run(argv, capsys):
    code = run_cli(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_cluster_masks_are_the_single_process_bytes_and_a_bad_file_is_one_line_each(region, cluster, tmp_path, capsys):
    model, inputs = region
    code, _, err = run(["--model", model, "--input", inputs, "--output", tmp_path / "one", "-q"], capsys)
    assert code == 0, err
    bad = tmp_path / "in"
    bad.mkdir()
    for path in inputs.iterdir():
        (bad / path.name).symlink_to(path)
    (bad / "0009_sat.jpg").write_bytes(b"not a jpeg")  # refused by the client, which reads every header
    damaged = bytearray(rgb_tif(bad / "s9.tif", landscape(96, 128, 9), origin=(0, 0), compress="deflate").read_bytes())
    damaged[len(damaged) // 2 : len(damaged) // 2 + 200] = b"U" * 200  # the header reads: it fails on a worker
    (bad / "s9.tif").write_bytes(bytes(damaged))
    code, out, err = run(
        ["--model", model, "--input", bad, "--output", tmp_path / "many", "--cluster", cluster, "-q"], capsys
    )
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "0009_sat.jpg" in errors[0] and str(bad / "s9.tif") in errors[1], err
    assert "wrote 8 masks" in out
    single, spread = outputs(tmp_path / "one"), outputs(tmp_path / "many")
    assert sorted(spread) == sorted(single) and len(single) == 8
    assert all(spread[name] == single[name] for name in single)  # the very bytes, marks included
    with distributed.Client(cluster) as client:  # an ONNX model: the workers never imported TensorFlow
        imported = client.run(lambda: sorted({"tensorflow", "keras"} & set(__import__("sys").modules)))
    assert list(imported.values()) == [[], []]


def test_a_resumed_run_skips_finished_outputs_and_redoes_the_others(region, cluster, tmp_path, capsys):
    model, inputs = region
    argv = ["--model", model, "--input", inputs, "--output", tmp_path / "out", "--cluster", cluster, "-q"]
    assert run(argv, capsys)[0] == 0
    redo = [tmp_path / "out" / "s1_mask.tif", tmp_path / "out" / "0001_mask.png"]
    redo[0].unlink()
    redo[1].write_bytes(redo[1].read_bytes()[:-20])  # cut off, as by a crash of another writer
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    code, out, err = run([*argv, "--resume"], capsys)
    assert code == 0, err
    assert "wrote 2 masks" in out and "6 inputs already done (--resume)" in out
    changed = {p for p in (tmp_path / "out").iterdir() if before.get(p) != p.stat().st_mtime_ns}
    assert changed == set(redo)
    code, out, _ = run([*argv, "--resume", "--tta"], capsys)  # other settings: nothing counts as done
    assert code == 0 and "wrote 8 masks" in out and "--resume" not in out


def test_region_outputs_agree_with_the_stats_and_the_scenes(region, cluster, tmp_path, capsys):
    pyogrio = pytest.importorskip("pyogrio")
    model, inputs = region
    code, out, err = run(
        [
            "--model",
            model,
            "--input",
            inputs,
            "--output",
            tmp_path / "out",
            "--cluster",
            cluster,
            "--stats",
            tmp_path / "stats.csv",
            "--mosaic",
            tmp_path / "region.vrt",
            "--polygons",
            tmp_path / "region.gpkg",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    assert "mosaic of 3 scenes" in out and "of 3 scenes in" in out
    table = list(csv.DictReader((tmp_path / "stats.csv").read_text().splitlines()))
    scenes = [row for row in table if row["input"].endswith(".tif")]
    totals = {int(row["class_index"]): row for row in table if row["input"] == "(all)"}
    assert len(scenes) == 3 * NUM_CLASSES and len(totals) == NUM_CLASSES
    for index, row in totals.items():
        assert int(row["pixels"]) == sum(
            int(r["pixels"]) for r in table[:-NUM_CLASSES] if int(r["class_index"]) == index
        )
    assert all(row["area_m2"] == "" for row in totals.values())  # the JPEG tiles have no ground size

    info = pyogrio.read_info(tmp_path / "region.gpkg")
    assert CRS.from_user_input(info["crs"]) == UTM
    _, _, geometry, fields = pyogrio.raw.read(tmp_path / "region.gpkg")
    class_ids, names, colours, areas, scene_names = fields
    assert set(scene_names) == {"s0.tif", "s1.tif", "s2.tif"}
    assert all(names[i] == CLASS_NAMES[c] for i, c in enumerate(class_ids))
    assert all(colours[i] == "#{:02x}{:02x}{:02x}".format(*PALETTE[c]) for i, c in enumerate(class_ids))
    for index in range(NUM_CLASSES):
        expected = sum(float(r["area_m2"]) for r in scenes if int(r["class_index"]) == index)
        assert areas[class_ids == index].sum() == pytest.approx(expected, abs=0.01)


def test_the_mosaic_is_one_raster_over_the_scenes(region, tmp_path, capsys):
    model, inputs = region
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for name in ("s0.tif", "s2.tif"):  # not touching: the mosaic covers the gap, as nodata
        (scenes / name).symlink_to(inputs / name)
    code, out, err = run(
        ["--model", model, "--input", scenes, "--output", tmp_path / "out", "--mosaic", tmp_path / "m" / "r.vrt", "-q"],
        capsys,
    )
    assert code == 0, err
    with rasterio.open(tmp_path / "m" / "r.vrt") as mosaic:
        assert mosaic.crs == UTM and mosaic.count == 1 and mosaic.nodata == 255
        assert tuple(mosaic.bounds) == pytest.approx((500_000, 4_000_000 - 48, 500_000 + 192, 4_000_000))
        colours = mosaic.colormap(1)
        assert all(colours[i] == (*PALETTE[i], 255) for i in range(NUM_CLASSES))
        classes = mosaic.read(1)
    with rasterio.open(tmp_path / "out" / "s2_mask.tif") as right:
        assert (classes[:, -128:] == right.read(1)).all()
    assert classes.shape == (96, 384) and (classes[:, 128:256] == 255).all()
    code, _, err = run(
        ["--model", model, "--input", scenes, "--output", tmp_path / "out", "--mosaic", tmp_path / "m" / "r.vrt", "-q"],
        capsys,
    )
    assert code == 0, err  # its own mosaic is replaced; a file fcn did not write is not
    (tmp_path / "other.vrt").write_text("<VRTDataset/>")
    code, _, err = run(
        ["--model", model, "--input", scenes, "--output", tmp_path / "o2", "--mosaic", tmp_path / "other.vrt"], capsys
    )
    assert code == 2 and "other.vrt" in err and "not written by fcn" in err


def test_min_area_drops_specks_and_simplify_keeps_the_pixel_areas():
    from fcn.inference.polygons import _vectorise

    classes = np.ones((32, 32), dtype=np.uint8)
    classes[4:6, 4:6] = 4  # 1 m² at 0.5 m pixels
    classes[20, 20] = 2  # a 0.25 m² speck
    classes[10:30, 10] = 255  # nodata: no polygon
    yy, xx = np.mgrid[:32, :32]
    classes[(yy > xx + 8) & (classes == 1)] = 3  # a staircase edge
    transform = Affine(0.5, 0, 500_000, 0, -0.5, 4_000_000)
    every = _vectorise(classes, transform, 1.0)
    assert sorted(set(every.class_ids)) == [1, 2, 3, 4]
    for index in range(4):
        pixels = (classes == index + 1).sum()
        assert sum(a for a, c in zip(every.areas, every.class_ids) if c == index + 1) == pytest.approx(pixels * 0.25)
    large = _vectorise(classes, transform, 1.0, min_area_m2=0.5)
    assert 2 not in large.class_ids and 4 in large.class_ids and len(large.class_ids) == len(every.class_ids) - 1
    simple = _vectorise(classes, transform, 1.0, simplify=1.0)
    assert simple.areas == every.areas  # the pixels' areas, not the smoothed outlines'
    vertices = [len(g.exterior.coords) for g in every.geometries]
    assert sum(len(g.exterior.coords) for g in simple.geometries) < sum(vertices)


def test_cluster_specs(capsys):
    from fcn.inference.cluster import ClusterSpec

    assert ClusterSpec.parse("local:3") == ClusterSpec(local_workers=3)
    assert ClusterSpec.parse("local").local_workers >= 1
    assert ClusterSpec.parse("tcp://10.0.0.5:8786") == ClusterSpec(address="tcp://10.0.0.5:8786")
    for wrong in ("local:0", "remote", "10.0.0.5:8786", "tcp://"):
        with pytest.raises(ValueError):
            ClusterSpec.parse(wrong)
    code, _, err = run(["--model", "m.onnx", "--input", "in", "--output", "out", "--cluster", "lokal:2"], capsys)
    assert code == 2 and "--cluster" in err and "lokal:2" in err


@pytest.mark.parametrize("options", [{"min_area_m2": 5.0}, {"simplify_m": 1.0}])
def test_polygon_options_without_polygons_are_refused_not_dropped(options, tmp_path):
    from fcn.core.errors import InputError
    from fcn.inference.region import RegionOutputs

    with pytest.raises(InputError, match="need --polygons"):
        RegionOutputs(**options).check(model=None, overwrite=False)
    RegionOutputs(polygons=tmp_path / "out.gpkg", **options).check(model=None, overwrite=False)  # taken with it
