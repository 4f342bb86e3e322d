"""The one reader of config files: regular files only, one-line errors, BOM accepted, absurd nesting refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kohya_recipe.errors import KohyaRecipeError, RecipeError
from kohya_recipe.files import atomic_write_text, loads_json, loads_toml, read_json, read_text, read_toml


def test_read_toml_reads_a_file_and_drops_a_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_bytes(b"\xef\xbb\xbfa = 1\n")
    assert read_toml(path) == {"a": 1}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_at_once_instead_of_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "f.toml"
    os.mkfifo(fifo)
    with pytest.raises(RecipeError, match=r"f\.toml: not a regular file \(a FIFO\)"):
        read_toml(fifo, error=RecipeError)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a = [", "invalid TOML"),
        (b"\xff\xfe", r"not UTF-8 text \(byte 0\)"),
        (b"x = " + b"[" * 5000 + b"]" * 5000, "invalid TOML"),
    ],
)
def test_bad_toml_is_one_line_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(KohyaRecipeError, match=message) as info:
        read_toml(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_missing_file_and_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(KohyaRecipeError, match="file not found"):
        read_text(tmp_path / "nope.toml")
    with pytest.raises(KohyaRecipeError, match="is a folder"):
        read_text(tmp_path)


def test_deep_json_is_an_error_not_a_recursion_traceback(tmp_path: Path) -> None:
    with pytest.raises(KohyaRecipeError, match="nested more than 64 levels deep"):
        loads_json("[" * 100_000 + "]" * 100_000, source="x.json")
    with pytest.raises(KohyaRecipeError, match=r"^x.json: invalid JSON: nested more than 64 levels deep$"):
        loads_json("[" * 65 + "]" * 65, source="x.json")  # parses, but later walks and copies would overflow
    assert isinstance(loads_json("[" * 64 + "]" * 64), list)  # 64 levels are fine
    path = tmp_path / "x.json"
    atomic_write_text(path, '{"a": [1, 2]}')
    assert read_json(path) == {"a": [1, 2]}


def test_deep_toml_of_dotted_keys_is_an_error() -> None:
    # tomllib builds any depth of dotted keys without recursion; deep_merge's copy would then overflow the stack
    deep = "a" + ".a" * 5000 + " = 1"
    with pytest.raises(KohyaRecipeError, match=r"^r.toml: invalid TOML: nested more than 64 levels deep$"):
        loads_toml(deep, source="r.toml")
    assert loads_toml("a" + ".a" * 63 + " = 1")["a"]["a"]


def test_loads_toml_names_its_source() -> None:
    with pytest.raises(KohyaRecipeError, match=r"^--set: invalid TOML"):
        loads_toml("= 1", source="--set")


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * 2048)
    with pytest.raises(KohyaRecipeError, match="larger than"):
        read_text(path, max_bytes=1024)
