"""What a process loads with the application: the heavy numeric libraries only where they are used.

Every API process, worker and ``rapport import`` wires the whole application (``app.wire_runtime``).
scipy.stats, scipy.optimize (with scipy.sparse) and scikit-learn weigh about 22, 24 and 45 MB: they are
imported by the code that needs them (a campaign's significance test uses ``math.erfc``; the score fits and
the recommender import theirs when they run), so a process that never fits a model does not carry them
(B3's memory target: an import under 500 MB RSS).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("scipy.stats", "scipy.optimize", "scipy.sparse", "sklearn")


def _loaded_after(code: str) -> list[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_wiring_the_application_loads_no_heavy_numeric_library(tmp_path: Path) -> None:
    code = (
        "from rapport.app import create_app, wire_runtime\n"
        "from rapport.config import Settings\n"
        "from rapport.runtime import build_runtime\n"
        f"runtime = build_runtime(Settings(database_url='sqlite:///{tmp_path}/w.db', secret_key='k' * 32))\n"
        "wire_runtime(runtime)\n"
        "create_app(runtime=runtime, start_worker=False)\n"
    )
    assert _loaded_after(code) == []


def test_the_code_that_needs_them_still_gets_them() -> None:
    assert _loaded_after("from rapport.process.scores import bgnbd, gamma_gamma") == []
    fitted = _loaded_after(
        "import numpy as np\n"
        "from rapport.process.scores import bgnbd\n"
        "r = np.random.default_rng(1)\n"
        "T = r.uniform(20, 60, 300)\n"
        "x = r.poisson(2, 300).astype(float)\n"
        "bgnbd.fit_bgnbd(x, np.where(x > 0, T * r.uniform(0.2, 1, 300), 0), T)"
    )
    assert "scipy.optimize" in fitted
