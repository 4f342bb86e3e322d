"""Where the bundled ``presets/`` and ``templates/`` folders are.

In a wheel they sit inside the package (hatchling ``force-include``); in a checkout or an editable install they
are the top-level folders next to the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The bundled folder ``name`` ("presets" or "templates")."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bundled folder {name!r} is missing from the installation")
