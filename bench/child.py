"""Child-process entry of ``harness.run_in_child``: call the target, print its result as JSON."""

from __future__ import annotations

import importlib
import json
import sys

from bench.harness import peak_rss_mb


def main() -> None:
    """Run the target named in argv[1] and print its result with the peak RSS."""
    spec = json.loads(sys.argv[1])
    module, _, name = spec["target"].partition(":")
    result = getattr(importlib.import_module(module), name)(**spec["kwargs"])
    result["rss_mb"] = peak_rss_mb()
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
