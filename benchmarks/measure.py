"""Run one command and print its wall time and peak RSS as JSON (the child's own figures).

python benchmarks/measure.py -- gdal_polygonize.py classes.tif out.gpkg
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main() -> None:
    command = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "command": command[0],
                "rc": done.returncode,
                "wall_s": round(wall, 3),
                "peak_rss_mb": round(peak, 1),
                "stderr": done.stderr[-500:],
            }
        )
    )


if __name__ == "__main__":
    main()
