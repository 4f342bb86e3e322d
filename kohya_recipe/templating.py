"""Jinja2 for text people read (run scripts, reports) — never for files a program parses."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from kohya_recipe.resources import resource_dir


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    # StrictUndefined: a missing variable is an error, not an empty string in a launch script.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
    )


def render_template(name: str, **context: Any) -> str:
    return str(_environment().get_template(name).render(**context))
