"""--batch-size is guarded by the memory estimate that guards --scale: one line naming the image, the others done."""

import numpy as np
from PIL import Image

from fcn.core import memory
from fcn.inference.folder import PredictionJob, fitting_images
from fcn.inference.memory import _tile_memory, batch_memory
from fcn.inference.scene_jobs import JobFailures


def test_the_batch_estimate_grows_with_the_batch_up_to_the_windows_of_the_image():
    assert batch_memory(512, 512, 1.0, 512, 8) == 8 * batch_memory(512, 512, 1.0, 512, 1)  # 8 whole images
    windows = batch_memory(4096, 4096, 1.0, 512, 10**9)  # 64 windows at most, whatever the batch
    assert windows == 64 * _tile_memory(512) and batch_memory(4096, 4096, 1.0, 512, 10**9, tta=True) == 4 * windows


def test_a_huge_batch_size_is_refused_per_image_before_any_work(tmp_path, monkeypatch):
    jobs = []
    for name, side in (("small_sat.png", 32), ("large_sat.png", 2048)):
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(tmp_path / name)
        jobs.append(PredictionJob(tmp_path / name, tmp_path / f"{name}.mask.png", None))
    monkeypatch.setattr(memory, "_available_memory", lambda: 2 * 2**30)
    failures = JobFailures()
    assert fitting_images(jobs, 1.0, failures, 512, batch_size=1) == jobs
    assert fitting_images(jobs, 1.0, failures, 512, batch_size=10**9) == jobs[:1]  # 2 small images: no more
    ((path, reason),) = failures.items
    assert (
        path == jobs[1].image and "--batch-size 1000000000" in reason and "a smaller --scale or --batch-size" in reason
    )
