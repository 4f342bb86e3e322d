"""The library works without click: every exported verb resolves, and importing the package is cheap."""

from __future__ import annotations

import subprocess
import sys

import kohya_recipe


def test_every_export_resolves() -> None:
    for name in kohya_recipe.__all__:
        assert callable(getattr(kohya_recipe, name)) or isinstance(getattr(kohya_recipe, name), type), name


def test_import_is_lazy() -> None:
    code = "import sys, kohya_recipe; print(sorted(m for m in sys.modules if m.startswith('kohya_recipe')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['kohya_recipe']"


def test_unknown_attribute() -> None:
    try:
        kohya_recipe.nope  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")
