"""The generated reference docs (docs/recipe.md, docs/cli.md) cannot drift from the code.

Each test regenerates in memory with kohya_recipe.docgen and compares with the files on disk; when one fails,
run `python tools/docgen.py` and commit the result.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from kohya_recipe.cli import COMMANDS
from kohya_recipe.recipe import advice, sections
from kohya_recipe.recipe import models as recipe
from tools import docgen

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _all_commands() -> list[tuple[str, ...]]:
    """Every command path: ("build",), ("caption",), ("caption", "add"), ... (imports every CLI module)."""
    paths: list[tuple[str, ...]] = []

    def walk(command: click.Command, ctx: click.Context, path: tuple[str, ...]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                if not sub.hidden:
                    walk(sub, click.Context(sub, info_name=name, parent=ctx), (*path, name))

    for name, (module_name, attr, _) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            pytest.fail(f"command {name!r}: its module {module_name} does not exist ({exc})")
        command = getattr(module, attr, None)
        assert isinstance(command, click.Command), f"command {name!r}: {module_name}.{attr} is not a click command"
        walk(command, click.Context(command, info_name=name), (name,))
    return paths


@pytest.mark.parametrize("rel", [docgen.RECIPE_MD, docgen.CLI_MD], ids=str)
def test_generated_doc_is_current(rel: Path) -> None:
    generated = docgen.render_all()[rel]
    on_disk = (ROOT / rel).read_text(encoding="utf-8")
    assert on_disk == generated, f"{rel} is out of date: run `python tools/docgen.py` and commit it"


def test_every_command_and_sub_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for path in _all_commands():
        name = " ".join(("kohya-recipe", *path))
        assert f"`{name}`\n\n```text\nUsage: {name} " in text, f"{name} --help is missing from docs/cli.md"
    # The command list at the top names every command with its one-line help.
    for name, (_, _, help_text) in COMMANDS.items():
        assert f"[`kohya-recipe {name}`](#kohya-recipe-{name}) — {help_text}" in text


def test_cli_doc_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    narrow = docgen.render_cli_md()
    monkeypatch.setenv("COLUMNS", "250")
    assert docgen.render_cli_md() == narrow


def test_missing_command_module_is_skipped_with_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(COMMANDS, "ghost", ("kohya_recipe.cli.no_such_module", "ghost_cmd", "Not written yet."))
    text = docgen.render_cli_md()
    assert "## `kohya-recipe ghost`" in text
    assert "*Not documented: module kohya_recipe.cli.no_such_module does not exist yet." in text
    assert "docgen: skipping ghost" in capsys.readouterr().err


def test_missing_dependency_of_a_command_module_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Only the command's own module may be missing; a module that exists but fails to import is a real bug.
    (tmp_path / "_docgen_broken_cli.py").write_text("import _docgen_not_installed\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "broken", ("_docgen_broken_cli", "cmd", "Broken."))
    with pytest.raises(ModuleNotFoundError, match="_docgen_not_installed"):
        docgen.help_pages()


def test_check_mode_reports_stale_docs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert "docs/recipe.md is out of date" in capsys.readouterr().err
    assert docgen.main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / "docs" / "cli.md").read_text(encoding="utf-8") == (DOCS / "cli.md").read_text(encoding="utf-8")
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "docs" / "cli.md").write_text("edited by hand\n", encoding="utf-8")
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert "docs/cli.md is out of date" in capsys.readouterr().err


def _models() -> list[type[BaseModel]]:
    return [
        obj
        for module in (recipe, sections)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__
    ]


def _field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _field_paths(ann, f"{prefix}{name}.")
        elif args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            out += _field_paths(args[0], f"{prefix}{name}[].")
        else:
            out.append(prefix + name)
    return out


def test_recipe_doc_has_every_field_with_its_article_words() -> None:
    text = (DOCS / "recipe.md").read_text(encoding="utf-8")
    paths = _field_paths(recipe.Recipe)
    assert len(paths) > 80
    for path in paths:
        assert f"### `{path}`" in text, f"{path} is missing from docs/recipe.md"
    assert "- **The article:** 96: storage is cheap" in text  # network.rank's json_schema_extra["article"]


def test_recipe_doc_shows_each_presets_value() -> None:
    text = (DOCS / "recipe.md").read_text(encoding="utf-8")
    assert "| [`batch_size`](#field-training-batch_size) | `int` | `1` | `1` | `1` | `4` |" in text
    assert (
        "- **Presets:** `likeness-sd15` `[768, 768]` · `likeness-sdxl` `[1024, 1024]` · `style-sd15` `[768, 768]`"
        in text
    )


def test_rules_name_every_validator() -> None:
    """Every validator has at least as many documented rules as it has `raise ValueError` branches."""
    documented = [r.where for r in docgen.RULES]
    validators = set()
    for model in _models():
        decorators = model.__pydantic_decorators__
        for name, dec in {**decorators.field_validators, **decorators.model_validators}.items():
            where = f"{model.__name__}.{name}"
            validators.add(where)
            source = inspect.getsource(dec.func)  # type: ignore[attr-defined]
            raises = len(re.findall(r"raise ValueError\(", source))
            assert documented.count(where) >= max(1, raises), f"document the rules of {where} in docgen.RULES"
    functions = {r.where for r in docgen.RULES if ":" in r.where}
    assert validators | functions == set(documented), "docgen.RULES names a validator that no longer exists"
    for where in functions | {w.where for w in docgen.WARNINGS}:
        module, _, name = where.partition(":")
        assert callable(getattr(importlib.import_module(f"kohya_recipe.{module}"), name)), where
    # One documented warning per warning recipe_warnings can give.
    assert len(docgen.WARNINGS) == inspect.getsource(advice.recipe_warnings).count("out.append(")


def test_index_maps_the_docs_folder() -> None:
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    for name in (
        "recipe.md",
        "cli.md",
        "gui.md",
        "dataset-checks.md",
        "training.md",
        "queue-and-sweeps.md",
        "report.md",
        "exit-codes.md",
    ):
        assert f"]({name})" in text, f"docs/index.md does not link {name}"
