"""Every command's input parser against generated hostile files (issue 14).

For each command that reads a file the user names, hypothesis writes a hostile one (absurd nesting, wrong types,
huge numbers, non-finite floats, bad encodings, a BOM, NUL bytes, truncation, sizes) and the command must answer
with success or a one-line error (documented exit code, ``Error: ...`` on stderr, no traceback) and leave the
user's files as they were. Special files (a FIFO, a folder, a dangling symlink, /dev/zero) must be refused at once,
never hang: those run in a subprocess with a timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kohya_recipe.errors import ExitCode
from tests._cli_util import run_cli
from tests._project_util import make_images

DOCUMENTED_EXITS = {int(code) for code in ExitCode}


# ---------------------------------------------------------------------------------------------------------------
# Hostile contents


def _nested(kind: str, depth: int) -> bytes:
    if kind == "toml-array":
        return b"x = " + b"[" * depth + b"]" * depth + b"\n"
    if kind == "toml-table":
        return b"[" + b".".join(b"a" for _ in range(depth)) + b"]\nx = 1\n"
    if kind == "toml-inline":
        return b"x = " + b"{a = " * depth + b"1" + b"}" * depth + b"\n"
    return b"[" * depth + b"]" * depth  # json


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.just("\x00\u202e\ufeff"),
    st.just("x" * 5000),
)
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _toml_value(value: object) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(str(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return '""'


RECIPE_KEYS = [
    ("subject", "trigger"),
    ("dataset", "repeats"),
    ("network", "rank"),
    ("network", "alpha"),
    ("optimizer", "learning_rate"),
    ("optimizer", "args"),
    ("training", "resolution"),
    ("training", "max_train_epochs"),
    ("samples", "prompts"),
    ("output", "name"),
    ("extra", "max_grad_norm"),
    ("gui", "LoRA_type"),
    ("dataset", "subsets"),
    ("queue", "next_id"),
    ("entries", "x"),
]


@st.composite
def toml_files(draw: st.DrawFn) -> bytes:
    """A TOML file that is broken in one of many ways, or well-formed with hostile values in real keys."""
    kind = draw(st.sampled_from(["nested", "values", "bytes", "encoding", "size"]))
    if kind == "nested":
        return _nested(draw(st.sampled_from(["toml-array", "toml-table", "toml-inline"])), draw(st.integers(50, 6000)))
    if kind == "values":
        lines = ['preset = "likeness-sd15"']
        for section, key in draw(st.lists(st.sampled_from(RECIPE_KEYS), min_size=1, max_size=5, unique=True)):
            lines.append(f"[{section}]\n{key} = {_toml_value(draw(_json_values))}")
        return "\n".join(lines).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "encoding":
        text = 'preset = "likeness-sd15"\n[subject]\ntrigger = "Zed"\n'
        codec = draw(st.sampled_from(["utf-16", "utf-8-sig", "latin-1", "utf-32"]))
        return (text + "# café\n").encode(codec)
    return b"# " + b"a" * draw(st.integers(10_000, 200_000)) + b"\n"


@st.composite
def json_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["nested", "values", "bytes", "keys"]))
    if kind == "nested":
        return _nested("json", draw(st.integers(50, 120_000)))
    if kind == "values":
        return json.dumps(draw(_json_values), allow_nan=True).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    keys = draw(
        st.lists(
            st.sampled_from(
                [
                    "LoRA_type",
                    "network_dim",
                    "epoch",
                    "max_resolution",
                    "optimizer_args",
                    "sample_prompts",
                    "output_name",
                    "train_data_dir",
                    "bucket_reso_steps",
                ]
            ),
            min_size=1,
            max_size=5,
        )
    )
    return json.dumps({k: draw(_json_values) for k in keys}, allow_nan=True).encode()


@st.composite
def binary_files(draw: st.DrawFn) -> bytes:
    """Files that claim to be safetensors or event files: plausible headers, lying lengths, truncation."""
    kind = draw(st.sampled_from(["raw", "safetensors", "tfrecord"]))
    if kind == "raw":
        return draw(st.binary(max_size=400))
    if kind == "safetensors":
        header = draw(json_files())
        length = draw(st.one_of(st.just(len(header)), st.integers(0, 2**64 - 1)))
        return length.to_bytes(8, "little") + header + draw(st.binary(max_size=64))
    length = draw(st.integers(0, 2**64 - 1))
    return length.to_bytes(8, "little") + draw(st.binary(max_size=64))


# ---------------------------------------------------------------------------------------------------------------
# Running a command and judging the outcome


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _judge(args: list[str]) -> None:
    """``args`` through ``main`` (which turns errors into one ``Error:`` line): any other exception fails."""
    code, out, err = run_cli(*args)
    assert "Traceback" not in out + err, err
    assert code in DOCUMENTED_EXITS, (args, code, err)
    if code not in (0, int(ExitCode.CHECK_FAILED)):
        errors = [line for line in err.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, (args, err)


Case = Callable[[Path, bytes], list[str]]


def _recipe_case(command: str) -> Case:
    def args(tmp: Path, data: bytes) -> list[str]:
        (tmp / "recipe.toml").write_bytes(data)
        if command == "render":
            return ["render", str(tmp / "recipe.toml"), "--out", str(tmp / "out"), "--dry-run"]
        if command == "build":
            return [
                "build",
                str(tmp / "images"),
                "--recipe",
                str(tmp / "recipe.toml"),
                "--out",
                str(tmp / "out"),
                "--dry-run",
            ]
        if command == "sweep":
            return [
                "sweep",
                str(tmp / "recipe.toml"),
                "--grid",
                "network.alpha=8,16",
                "--out",
                str(tmp / "sw"),
                "--dry-run",
            ]
        return ["plan", str(tmp / "recipe.toml"), "--images", str(tmp / "images")]

    return args


def _file_case(name: str, build: Callable[[Path], list[str]]) -> Case:
    def args(tmp: Path, data: bytes) -> list[str]:
        (tmp / name).write_bytes(data)
        return build(tmp)

    return args


TOML_CASES: dict[str, Case] = {
    "plan": _recipe_case("plan"),
    "render": _recipe_case("render"),
    "build": _recipe_case("build"),
    "sweep": _recipe_case("sweep"),
    "check --rules": _file_case("rules.toml", lambda t: ["check", str(t / "images"), "--rules", str(t / "rules.toml")]),
    "queue list": _file_case("queue.toml", lambda t: ["queue", "list", "--queue-file", str(t / "queue.toml")]),
}
JSON_CASES: dict[str, Case] = {
    "import": _file_case("cfg.json", lambda t: ["import", str(t / "cfg.json"), "-o", str(t / "imported.toml")]),
}
BINARY_CASES: dict[str, Case] = {
    "inspect": _file_case("lora.safetensors", lambda t: ["inspect", str(t / "lora.safetensors")]),
    "report": _file_case("events.out.tfevents.1.host", lambda t: ["report", str(t / "events.out.tfevents.1.host")]),
}
CAPTION_CASES: dict[str, Case] = {
    "check": _file_case("images/img00.txt", lambda t: ["check", str(t / "images")]),
    "caption show": _file_case("images/img00.txt", lambda t: ["caption", "show", str(t / "images")]),
    "caption add": _file_case(
        "images/img00.txt", lambda t: ["caption", "add", "x", "--dir", str(t / "images"), "--dry-run"]
    ),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_images(tmp_path_factory.mktemp("images") / "images", [(64, 64), (64, 80)])


def _run(case: Case, data: bytes, images: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("hostile")
    target = tmp / "images"
    target.mkdir()
    for f in images.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    args = case(tmp, data)
    before = {k: v for k, v in _snapshot(tmp).items() if not k.startswith(("out", "sw", "imported"))}
    _judge(args)
    after = {k: v for k, v in _snapshot(tmp).items() if k in before}
    assert after == before, f"{args}: the command changed the user's files"


HOSTILE = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("name", sorted(TOML_CASES))
@HOSTILE
@given(data=toml_files())
def test_toml_inputs(name: str, data: bytes, images: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _run(TOML_CASES[name], data, images, tmp_path_factory)


@pytest.mark.parametrize("name", sorted(JSON_CASES))
@HOSTILE
@given(data=json_files())
def test_json_inputs(name: str, data: bytes, images: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _run(JSON_CASES[name], data, images, tmp_path_factory)


@pytest.mark.parametrize("name", sorted(BINARY_CASES))
@HOSTILE
@given(data=binary_files())
def test_binary_inputs(name: str, data: bytes, images: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _run(BINARY_CASES[name], data, images, tmp_path_factory)


@pytest.mark.parametrize("name", sorted(CAPTION_CASES))
@HOSTILE
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode), toml_files()))
def test_caption_inputs(name: str, data: bytes, images: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _run(CAPTION_CASES[name], data, images, tmp_path_factory)


# ---------------------------------------------------------------------------------------------------------------
# Special files: refused at once, in a real process, never a hang

SPECIAL_TARGETS = {
    "plan": lambda f, t: ["plan", f],
    "render": lambda f, t: ["render", f, "--out", str(t / "out")],
    "build --recipe": lambda f, t: ["build", str(t / "images"), "--recipe", f, "--out", str(t / "out")],
    "import": lambda f, t: ["import", f, "-o", str(t / "x.toml")],
    "check --rules": lambda f, t: ["check", str(t / "images"), "--rules", f],
    "inspect": lambda f, t: ["inspect", f],
    "queue list": lambda f, t: ["queue", "list", "--queue-file", f],
    "report": lambda f, t: ["report", f],
    "sweep": lambda f, t: ["sweep", f, "--grid", "network.alpha=8,16", "--out", str(t / "sw")],
}


def _special(kind: str, tmp: Path) -> str:
    path = tmp / f"special-{kind}.toml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling symlink":
        path.symlink_to(tmp / "nowhere.toml")
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    return str(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX special files")
@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "dangling symlink"])
@pytest.mark.parametrize("name", sorted(SPECIAL_TARGETS))
def test_special_files_are_refused_at_once(name: str, kind: str, images: Path, tmp_path: Path) -> None:
    (tmp_path / "images").symlink_to(images)
    args = SPECIAL_TARGETS[name](_special(kind, tmp_path), tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "kohya_recipe", *args], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    if (name, kind) == ("queue list", "dangling symlink"):
        # a queue file that does not exist yet is an empty queue (`queue add` creates it where the link points)
        assert (proc.returncode, proc.stderr) == (0, ""), (args, proc.stdout, proc.stderr)
        assert proc.stdout.startswith("The queue is empty (")
        return
    assert proc.returncode in (1, 2), (args, proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.count("Error:") == 1, proc.stderr
