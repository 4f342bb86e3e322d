"""run_real_extra.py HARNESS PROJECT CONFIG_TOML [run_real options] -- EXTRA ARGS...

The trainer harness's own ``run_real.py`` (``HARNESS/run_real.py``, imported and run unchanged), with EXTRA
appended to the trainer's command line the way the kohya_ss GUI appends its ``additional_parameters`` after
``--config_file`` (sd-scripts lets the command line win over the TOML). ``run_real.sh`` takes no extra arguments;
this is the only difference. Run it with the harness's Python (``HARNESS/venv/bin/python``), under the same lock
``run_real.sh`` takes (one real training at a time).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def main(argv: list[str]) -> int:
    harness, rest = argv[0], argv[1:]
    cut = rest.index("--") if "--" in rest else len(rest)
    args, extra = rest[:cut], rest[cut + 1 :]
    sys.path.insert(0, harness)
    import run_real  # type: ignore[import-not-found]  # the harness's, on sys.path only here

    popen = subprocess.Popen

    def with_extra(cmd: list[str], *a: Any, **k: Any) -> Any:
        run_real.say("extra command-line args (the GUI's additional_parameters): " + " ".join(extra))
        return popen([*cmd, *extra], *a, **k)

    run_real.subprocess.Popen = with_extra
    return int(run_real.main(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
