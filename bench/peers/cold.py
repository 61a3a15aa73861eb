"""A cold process: a fresh `python -c` that imports the system, opens the store and lists the runs filtered
and ordered, then exits. The wall clock runs from spawn to exit; the child also reports the time spent
after its imports (open + the one call).

Python keeps compiled modules (bytecode) as on a user's machine, where the first run writes them: into
`bytecode`, which the warm-up round fills, whatever PYTHONDONTWRITEBYTECODE says (this machine sets it)."""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peers import children


def sample(system, folder: Path, experiment, bytecode: Path) -> dict:
    env = children.environment(system.environment(folder) | {"PYTHONPYCACHEPREFIX": str(bytecode)})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    code = system.cold_code(folder, experiment)
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:  # files: an owner it starts may inherit them
        start = time.perf_counter()
        returncode = subprocess.run(
            [sys.executable, "-c", code], cwd=children.ROOT, env=env, stdout=stdout, stderr=stderr
        ).returncode
        wall_ms = 1000 * (time.perf_counter() - start)
        stdout.seek(0), stderr.seek(0)
        printed, message = stdout.read().decode(), stderr.read().decode(errors="replace")
    if returncode != 0:
        raise RuntimeError(f"{system.NAME} cold process failed:\n{message[-2000:]}")
    return {"wall_ms": wall_ms, **json.loads(printed.strip().splitlines()[-1])}
