"""The pipeline's memory: one epoch over 1,000 pairs of 1200x600 JPEGs, measured in a child process.

Also a script, to measure any pipeline function the same way (the child runs this file):

    python tests/test_data_memory.py MODULE:FUNCTION FOLDER IMAGE_SIZE

prints the child's peak resident memory in bytes and the seconds it took to build the pipeline
(which checks every file) and to run one epoch, as JSON.
"""

import importlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw


def make_pairs(folder, n: int, width: int = 1200, height: int = 600, seed: int = 0):
    """Write n A|B JPEG files of noise under a few random shapes into folder; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = rng.integers(0, width - 100), rng.integers(0, height - 100)
            size = rng.integers(20, 100, 2)
            draw.ellipse((x, y, x + size[0], y + size[1]), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        image.save(folder / f"{i}.jpg", quality=90)
    return folder


def measure(pipeline: str, folder, image_size: int) -> dict:
    """Run one epoch of pipeline ("module:function") over folder in a child process; its peak RSS and times."""
    result = subprocess.run([sys.executable, __file__, pipeline, str(folder), str(image_size)],
                            capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _one_epoch(pipeline: str, folder: str, image_size: int) -> dict:
    module, name = pipeline.split(":")
    function = getattr(importlib.import_module(module), name)
    start = time.perf_counter()
    dataset = function(folder, image_size=image_size)
    built = time.perf_counter()
    batches = sum(1 for _ in dataset)
    return {"peak_bytes": _peak_rss(), "batches": batches, "build_seconds": built - start,
            "epoch_seconds": time.perf_counter() - built}


def _peak_rss() -> int:
    """This process's peak resident memory in bytes.

    On Linux, VmHWM from /proc: getrusage's ru_maxrss keeps the high-water mark of the memory a
    process had before exec, so a child started by a large process (pytest, after many tests)
    would report its parent's peak.
    """
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024  # kB
    kib = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib


@pytest.mark.slow  # writes 1,000 JPEGs and decodes them all in a child process
def test_an_epoch_over_1000_large_pairs_keeps_memory_bounded(tmp_path):
    # Cached at the jitter size in uint8 the pairs take 1,000 x 286 x 286 x 6 bytes = 0.49 GB, on top of TensorFlow's
    # own 0.6 GB or so. At full size in float32 (p2p before) they took 8.6 GB, in uint8 2.2 GB, at 286 in float32 2.0 GB.
    report = measure("p2p.data:paired_dataset", make_pairs(tmp_path / "pairs", 1000), 256)
    assert report["batches"] == 1000
    assert report["peak_bytes"] < 2e9, report


if __name__ == "__main__":
    print(json.dumps(_one_epoch(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
