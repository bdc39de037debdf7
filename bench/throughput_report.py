"""bench/throughput.py's readable report of its figures."""

from __future__ import annotations

from throughput_measure import TRAIN_FLOPS_PER_FORWARD


def _fmt(value, spec=".2f", missing="-") -> str:
    return missing if value is None else format(value, spec)


def format_report(results: dict) -> str:
    """The readable table printed at the end of a run."""
    machine, settings = results["machine"], results["settings"]
    lines = [
        f"machine: {machine['cpu']}, {machine['cpus']} CPUs, GPUs: {', '.join(machine['gpus']) or 'none'}; "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}",
        f"load average (1/5/15 min) before {results['load_average_before']}, after {results['load_average_after']}"
        + ("   [--quick: a smoke run, not a measurement]" if settings["quick"] else ""),
    ]
    if max(results["load_average_before"] or [0]) > 0.5 * machine["cpus"]:
        lines.append(
            "busy machine: each figure is measured at its own moment, so ratios between them (even above 1) "
            "partly reflect the changing load"
        )
    return "\n".join(lines + peak_lines(results) + bare_lines(results) + pipeline_lines(results))


def peak_lines(results: dict) -> list[str]:
    lines = ["", "peak (square matmul, fastest product of any size):"]
    for dtype, peak in results["peaks"].items():
        if "error" in peak:
            lines.append(f"  {dtype:<9} n={peak['n']}: not run ({peak['error']})")
        else:
            sizes = ", ".join(
                f"{n}: {v:.1f}" if isinstance(v, float) else f"{n}: failed" for n, v in peak["by_size"].items()
            )
            lines.append(f"  {dtype:<9} {peak['gflops']:8.1f} GFLOP/s at n={peak['n']} (best by n: {sizes})")

    return lines


def bare_lines(results: dict) -> list[str]:
    size, batch = results["settings"]["image_size"], results["settings"]["batch_size"]
    lines = [
        "",
        f"bare model, batch {batch} at {size}x{size}, in-memory tensors "
        f"(train = {TRAIN_FLOPS_PER_FORWARD} x forward FLOPs; % of the compute dtype's matmul peak):",
    ]
    header = (
        f"  {'model':<7} {'precision':<15} {'xla':<4} {'GFLOP/img':>9} {'train img/s':>11} {'GFLOP/s':>8} {'%peak':>6} "
        f"{'predict img/s':>13} {'GFLOP/s':>8} {'%peak':>6} {'peak RSS MiB':>12}"
    )
    lines.append(header)
    for e in results["bare"]:
        xla = "on" if e["jit"] else "off"
        if "error" in e:
            lines.append(f"  {e['model']:<7} {e['precision']:<15} {xla:<4} failed: {e['error'][:120]}")
            continue
        lines.append(
            f"  {e['model']:<7} {e['precision']:<15} {xla:<4} {e['forward_gflop_per_image']:>9.2f} {e['train_img_s']:>11.3f} "
            f"{e['train_gflops']:>8.1f} {_fmt(_pct(e.get('train_fraction_of_peak')), '.1f'):>6} {e['predict_img_s']:>13.3f} "
            f"{e['predict_gflops']:>8.1f} {_fmt(_pct(e.get('predict_fraction_of_peak')), '.1f'):>6} {e['train_peak_rss_mb']:>12.0f}"
        )

    return lines


def pipeline_lines(results: dict) -> list[str]:
    settings = results["settings"]
    size, batch = settings["image_size"], settings["batch_size"]
    pipeline = results.get("input_pipeline", {})
    lines = [
        "",
        f"real pipelines ({settings['models'][0]}, batch {batch} at {size}x{size}; "
        "'vs bare' = images/s divided by the bare model's at the same settings):",
        f"  {'path':<50} {'precision':<15} {'img/s':>9} {'vs bare':>8}",
    ]
    if pipeline:
        lines.append(
            f"  {'input pipeline alone (decode + augment), vs train':<50} {'-':<15} "
            f"{pipeline['images_per_s']:>9.2f} {_fmt(pipeline.get('fraction_of_bare_train')):>8}"
        )
    for e in results.get("train_end_to_end", []):
        if "error" in e:
            lines.append(f"  {'train.py epoch':<50} {e['precision']:<15} failed: {e['error'][:100]}")
            continue
        lines.append(
            f"  {'train.py epoch without its validation pass':<50} {e['precision']:<15} "
            f"{e['train_img_s']:>9.2f} {_fmt(e.get('fraction_of_bare')):>8}"
        )
        lines.append(
            f"  {'train.py epoch as logged (incl. %.1f s validation)' % e['validation_s']:<50} "
            f"{e['precision']:<15} {e['train_img_s_with_validation']:>9.2f}"
        )
    for e in results.get("predict_end_to_end", []):
        lines.append(
            f"  {'predict.py folder (predict_folder), vs predict':<50} {e['precision']:<15} "
            f"{e['cli_images_per_s']:>9.2f} {_fmt(e.get('fraction_of_bare')):>8}"
        )
        lines.append(
            f"  {'per-image loop (model.predict one tile)':<50} {e['precision']:<15} "
            f"{e['naive_images_per_s']:>9.2f} {_fmt(e.get('naive_fraction_of_bare')):>8}"
            f"   predict.py is {e['speedup']:.2f}x faster"
        )
    miou = results.get("mean_iou")
    if miou:
        lines += [
            "",
            f"mean IoU of {miou['num_images']} masks: fcn-mean-iou {miou['ours_s']:.3f} s, course tool way "
            f"{miou['course_s']:.3f} s ({miou['speedup']:.1f}x); same numbers: {'yes' if miou['agree'] else 'NO'}",
        ]
    if results.get("peak_memory_mb") is not None:
        p = results["primary"]
        lines.append(
            f"peak memory of a training process ({p['model']}, {p['precision']}, batch {batch} at {size}x{size}): "
            f"{results['peak_memory_mb']:.0f} MiB (ru_maxrss)"
        )
    return lines


def _pct(fraction):
    return None if fraction is None else 100 * fraction
