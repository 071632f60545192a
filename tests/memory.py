"""How much a build's memory grows, measured in a process of its own (issue 16: memory per worker
bounded whatever the source sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: The build in a new interpreter; its peak resident memory read from VmHWM, which starts anew at
#: exec (``ru_maxrss`` keeps the forking process's: under pytest, hundreds of MB before the build
#: has done anything). The baseline is taken after the imports a build makes anyway.
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy, pandas, pyarrow.parquet, tifffile, zarr
    from publisher.build import build
    from publisher.config import load_pipeline

    def high_water():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

    base = high_water()
    report = build(load_pipeline(sys.argv[1]), workers=2)
    print(json.dumps({"grown": high_water() - base, "report": report.to_json()}))
""")


def build_growth(pipeline: Path) -> tuple[int, dict[str, Any]]:
    """Build ``pipeline`` in a new process: the bytes its peak memory grew by, and the report."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(pipeline)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return measured["grown"], measured["report"]
