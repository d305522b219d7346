"""Data path benchmark: one training sample from our cache vs the official per-sample path.

All run in the same invocation on the same RadGenome-sized synthetic studies, each in a fresh
single-threaded process (so times are per CPU core and peak memory is per worker):
- reference: decode the volume and the 10 masks to float64 with nibabel, MONAI CropForeground
  + Resize (area) per region and for image + masks, window (reg2rg.data.reference);
- float: ``CachedRegionDataset[i]``, float32 samples (the precomputed bin sums decoded, divided by
  the bin volumes and windowed in the worker);
- compact: ``CachedRegionDataset(compact=True)[i]``, what training reads: the bin sums as int16 / uint8,
  made float32 on the device (``reg2rg.data.compact``).
Bytes per sample: what crosses to the device (the volumes, and the compact sample's bins).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from reg2rg.constants import REGIONS


def _peak_rss_mb() -> float:
    """Peak resident memory of this process's address space (VmHWM).

    Not ru_maxrss: Linux carries it across exec, so a spawned worker would report the peak of
    the forked copy of its parent (here, the process that just built the cache).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_ours(cache_dir: str, repeats: int, compact: bool) -> dict:
    import torch

    from reg2rg.data.compact import volume_bytes
    from reg2rg.data.dataset import CachedRegionDataset
    from reg2rg.data.preprocessing import PreprocessConfig

    torch.set_num_threads(1)
    dataset = CachedRegionDataset(cache_dir, "train", PreprocessConfig(), compact=compact)
    assert dataset.compact == compact
    dataset[0]  # warm-up: imports and allocator
    times, sizes = [], []
    for repeat in range(repeats):
        dataset.set_epoch(repeat)
        for i in range(len(dataset)):
            start = time.perf_counter()
            sample = dataset[i]
            times.append(time.perf_counter() - start)
            assert sample["texture"].shape[0] == len(REGIONS)
            sizes.append(volume_bytes(sample))
    return {"seconds": times, "bytes": sizes, "peak_rss_mb": _peak_rss_mb()}


def _time_reference(volume: str, masks: dict[str, str]) -> dict:
    import torch

    from reg2rg.data.preprocessing import PreprocessConfig
    from reg2rg.data.reference import reference_sample

    torch.set_num_threads(1)
    start = time.perf_counter()
    reference_sample(volume, masks, PreprocessConfig())
    return {"seconds": [time.perf_counter() - start], "peak_rss_mb": _peak_rss_mb()}


def _in_fresh_process(function, *args) -> dict:
    # Transparent huge pages for torch's large CPU allocations (both paths): fewer page faults.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def run(
    json_path: str | None = None,
    studies: int = 2,
    shape: tuple[int, int, int] = (480, 480, 240),
    repeats: int = 3,
    reference_studies: int = 1,
    workdir: str | None = None,
) -> dict:
    """Measure the paths; writes ``json_path`` when given and returns the figures (``reference_studies`` 0:
    no reference)."""
    from reg2rg.data.build import build_cache
    from reg2rg.data.preprocessing import PreprocessConfig
    from reg2rg.data.readers.radgenome import RadGenomeReader
    from reg2rg.data.synthetic import SyntheticConfig, write_dataset

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp) / "radgenome"
        start = time.perf_counter()
        write_dataset(root, SyntheticConfig(n_train=studies, n_valid=1, shape=tuple(shape), seed=0))
        generate_s = time.perf_counter() - start
        records = RadGenomeReader(root).read("train").records
        report = build_cache(records, Path(tmp) / "cache", "train", PreprocessConfig(), workers=1)
        paths = {
            path: _in_fresh_process(_time_ours, str(Path(tmp) / "cache"), repeats, path == "compact")
            for path in ("float", "compact")
        }
        reference = {"seconds": [], "peak_rss_mb": 0.0}
        for record in records[:reference_studies]:
            files = {r: str(p) for r, p in record.masks.files.items()}
            result = _in_fresh_process(_time_reference, str(record.volume), files)
            reference["seconds"] += result["seconds"]
            reference["peak_rss_mb"] = max(reference["peak_rss_mb"], result["peak_rss_mb"])

    figures: dict = {}
    for path, result in paths.items():
        seconds = sum(result["seconds"]) / len(result["seconds"])
        figures[f"{path}_s_per_sample"] = round(seconds, 4)
        figures[f"{path}_samples_per_s_per_core"] = round(1 / seconds, 2)
        figures[f"{path}_mb_to_device_per_sample"] = round(sum(result["bytes"]) / len(result["bytes"]) / 1e6, 1)
        figures[f"{path}_peak_rss_mb"] = round(result["peak_rss_mb"], 1)
    compact_s = figures["compact_s_per_sample"]
    figures["compact_vs_float_speedup"] = round(figures["float_s_per_sample"] / compact_s, 2)
    figures["compact_vs_float_bytes"] = round(
        figures["float_mb_to_device_per_sample"] / figures["compact_mb_to_device_per_sample"], 2
    )
    if reference["seconds"]:
        reference_s = sum(reference["seconds"]) / len(reference["seconds"])
        figures["reference_s_per_sample"] = round(reference_s, 3)
        figures["reference_peak_rss_mb"] = round(reference["peak_rss_mb"], 1)
        figures["speedup"] = round(reference_s / compact_s, 1)
    figures |= {
        "studies": studies,
        "shape": list(shape),
        "samples_timed": len(paths["compact"]["seconds"]),
        "reference_samples_timed": len(reference["seconds"]),
        "synthetic_generation_s_per_study": round(generate_s / (studies + 1), 2),
        "cache_build_s_per_study": round(report["seconds"] / max(report["built"], 1), 2),
        "cache_mb_per_study": round(report["cache_bytes"] / 1e6 / report["usable"], 2),
        "source_mb_per_study": round(report["source_bytes"] / 1e6 / report["usable"], 2),
        "cache_to_source_size": round(report["cache_bytes"] / report["source_bytes"], 3),
    }
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(summary(figures), file=sys.stderr)
    return figures


def summary(figures: dict) -> str:
    """The figures as a few lines of text: per sample, one core."""
    lines = [
        f"{path:>9}: {figures[f'{path}_s_per_sample']:.3f} s per sample, "
        f"{figures[f'{path}_samples_per_s_per_core']:.2f} samples/s per core, "
        f"{figures[f'{path}_mb_to_device_per_sample']:.1f} MB to the device"
        for path in ("float", "compact")
    ]
    lines.append(
        f"  compact: {figures['compact_vs_float_speedup']}x faster, {figures['compact_vs_float_bytes']}x fewer bytes"
    )
    if "reference_s_per_sample" in figures:
        lines.append(f"reference: {figures['reference_s_per_sample']:.1f} s per sample ({figures['speedup']}x compact)")
    return "\n".join(lines)
