"""Acceptance (issue 12): the GUI JSON kohya-recipe writes trains as the user expects in the real kohya_ss GUI, and
every config the real GUI loads imports, round-tripping without changing what trains.

Run with the harnesses (see conftest.py; skipped without them)::

    KOHYA_RECIPE_REAL_TRAINER=/work/harness KOHYA_RECIPE_REAL_GUI=/work/harness-gui \\
    KOHYA_RECIPE_REAL_DATA=/work/harness-data python -m pytest tests/real/test_gui_real.py

1. Every preset: ``build`` -> its GUI JSON -> a fresh GUI form (and a form that held another LoRA type before) ->
   the GUI's TOML and command trains what the recipe says (rank, warmup, scheduler, length), and the real trainer
   trains it (>= 10 steps, exit 0; LoRA metadata = the recipe). SDXL: the GUI part only (the trainer harness trains
   SD 1.5; an SDXL run needs 17.6 GB).
2. A recipe using what the GUI cannot hold in its form (a warmup with another scheduler, Kohya LoCon, zeros the GUI
   drops) reaches the real trainer with its values.
3. The GUI repository's 45 LoRA configs: the GUI loads the original (A); ``import`` -> ``render --gui-json`` -> the
   GUI loads that (B); A and B train the same (training-relevant keys, as sd-scripts sees them), apart from the
   differences ``explain`` accepts, each a known fault of A's side; B trains what the recipe says.
4. The 27 real user-saved configs: every one the GUI loads imports; where the GUI refuses, import refuses quoting
   it or repairs/keeps the value and says so. Each imported one the GUI loads round-trips as in 3.

GUI runs are cached by input (gui_loop.CachedGui). ``KOHYA_RECIPE_REAL_RECORD=1`` also writes what the GUI (and the
trainer) did to tests/data/gui/recorded/, which the unit tests (test_gui_configs.py) check without the harnesses.
Work folders live under ``KOHYA_RECIPE_REAL_WORK`` (default: <tmp>/kohya-recipe-real): the GUI writes its TOMLs
into the configs' output folders, which point there, never into the GUI checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from kohya_recipe.recipe.loading import load_recipe
from kohya_recipe.report.safetensors_meta import read_metadata
from tests._gui_util import (
    BUCKET_ONE,
    CARRIED_RECIPE,
    RELEVANT_KEYS,
    STALE_RANK,
    STALE_WARMUP,
    differences,
    explain,
    gui_sentence,
    gui_steps_for,
    localize,
    trains_the_recipe,
)
from tests.real.conftest import Gui, Trainer, kohya_recipe
from tests.real.gui_loop import CachedGui, GuiResult, train_with_extra

DATA = Path(__file__).parents[1] / "data" / "gui"
GUI_REPO = sorted((DATA / "gui-repo").glob("*/*.json"))
USER_SAVED = sorted((DATA / "user-saved").glob("*.json"))
RECORDED = DATA / "recorded"
PRESETS = ("likeness-sd15", "style-sd15", "likeness-sdxl")
DARIUS = "darius/10_darius kawasaki person"
RECORD = os.environ.get("KOHYA_RECIPE_REAL_RECORD") == "1"
TRAIN_ARGS = ("--max-steps", "10", "--sample-reso", "64")


def work_root() -> Path:
    return Path(os.environ.get("KOHYA_RECIPE_REAL_WORK", Path(tempfile.gettempdir()) / "kohya-recipe-real"))


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def record(rel: str, data: dict[str, Any]) -> None:
    if RECORD:
        target = RECORDED / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")


def recorded_gui(result: GuiResult) -> dict[str, Any]:
    """What a unit test needs of a GUI run: its verdict, and the relevant part of what it would train."""
    out: dict[str, Any] = {"exit": result.exit, "reason": result.reason if not result.ok else ""}
    if result.ok:
        keys = {*RELEVANT_KEYS, "max_train_epochs", "max_train_steps"}
        out["toml"] = {k: v for k, v in sorted(result.toml.items()) if k in keys}
        out["extra"] = result.extra
        out["script"] = result.script
    return out


@pytest.fixture(scope="session")
def cached_gui(gui: Gui) -> CachedGui:
    return CachedGui(gui)


# ---- 1. every preset's GUI JSON, loaded into a fresh form, and trained ------------------------------------------


def _base_from_another_lora_type(gui_root: Path, real_data: Path, work: Path) -> Path:
    """The GUI repository's Kohya LoCon test config (rank 16, conv 16, constant scheduler), localized: loading it
    first leaves the form in another LoRA type and scheduler than our presets'."""
    config = json.loads((DATA / "gui-repo" / "test" / "locon-AdamW.json").read_text(encoding="utf-8"))
    local, _ = localize(config, gui_root=gui_root, data=real_data / "darius", work=work)
    path = work / "base-locon.json"
    path.write_text(json.dumps(local, indent=2), encoding="utf-8")
    return path


def _build(preset: str, real_data: Path, out: Path, recipe: Path | None = None) -> Path:
    args = ["build", str(real_data / DARIUS), "--preset", preset, "--trigger", "dkx", "--class", "man"]
    done = kohya_recipe(*args, *(["--recipe", str(recipe)] if recipe else []), "--out", str(out), "--force")
    assert done.returncode == 0, done.stderr
    return out / "dkx-1-A.json"


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_json_loads_into_the_gui_as_the_recipe_says(
    preset: str, cached_gui: CachedGui, gui: Gui, real_data: Path
) -> None:
    work = fresh(work_root() / "presets" / preset)
    config = _build(preset, real_data, work / "project")
    recipe = load_recipe(work / "project" / "resolved-recipe.toml")
    base = _base_from_another_lora_type(gui.root / "kohya_ss", real_data, work)
    seen: dict[str, Any] = {}
    for state, where in (("fresh", None), ("after a LoCon config", base)):
        result = cached_gui.check(config, work / f"gui-{state.replace(' ', '-')}", base=where)
        assert result.ok, f"{state}: {result.line}"
        assert trains_the_recipe(result.effective(), recipe) == {}, state
        seen[state] = recorded_gui(result)
    text = config.read_text(encoding="utf-8")
    record(
        f"presets/{preset}.json",
        {
            "project": str(work / "project"),
            "recipe": (work / "project" / "resolved-recipe.toml").read_text(encoding="utf-8"),
            "json_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "gui": seen,
        },
    )


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_from_the_guis_toml(
    preset: str, cached_gui: CachedGui, trainer: Trainer, real_data: Path
) -> None:
    work = work_root() / "presets-train" / preset
    fresh(work)
    config = _build(preset, real_data, work / "project")
    recipe = load_recipe(work / "project" / "resolved-recipe.toml")
    if recipe.model.family == "sdxl":
        pytest.skip("the trainer harness trains SD 1.5 only (an SDXL run needs 17.6 GB); the GUI part is checked")
    result = cached_gui.check(config, work / "gui")
    assert result.ok and result.toml_file is not None, result.line
    done = train_with_extra(
        trainer, work / "project", result.toml_file, result.extra, *TRAIN_ARGS, "--run-dir", str(work / "run")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    meta = read_metadata(next((work / "run" / "model").glob("*.safetensors")))
    assert meta["ss_network_dim"] == str(recipe.network.rank)
    assert float(meta["ss_lr_warmup_steps"]) == 0 and meta["ss_lr_scheduler"].startswith("adafactor")
    assert meta["ss_max_train_steps"] == "10"
    _record_training(f"presets-train/{preset}.json", result, done.returncode, meta)


TRAINED_META = (
    "ss_network_dim",
    "ss_network_alpha",
    "ss_network_args",
    "ss_lr_warmup_steps",
    "ss_lr_scheduler",
    "ss_max_grad_norm",
    "ss_huber_c",
    "ss_prior_loss_weight",
    "ss_max_train_steps",
    "ss_optimizer",
)


def _record_training(rel: str, result: GuiResult, exit_code: int, meta: dict[str, str]) -> None:
    record(rel, {"gui": recorded_gui(result), "trainer_exit": exit_code, "metadata": _meta(meta)})


def _meta(meta: dict[str, str]) -> dict[str, str]:
    return {k: meta[k] for k in TRAINED_META if k in meta}


# ---- 2. what the form cannot hold reaches the trainer ------------------------------------------------------------


def test_what_the_form_cannot_hold_reaches_the_trainer(
    cached_gui: CachedGui, trainer: Trainer, real_data: Path
) -> None:
    work = fresh(work_root() / "carried")
    (work / "recipe.toml").write_text(CARRIED_RECIPE, encoding="utf-8")
    config = _build("likeness-sd15", real_data, work / "project", work / "recipe.toml")
    recipe = load_recipe(work / "project" / "resolved-recipe.toml")
    result = cached_gui.check(config, work / "gui")
    assert result.ok, result.line
    # The form loads stale values (warmup 10 %, rank 8, conv 1) and drops the zeros; the command line carries them.
    assert trains_the_recipe(result.effective(), recipe) == {}
    assert "max_grad_norm" not in result.toml and "huber_c" not in result.toml and result.toml_file is not None
    done = train_with_extra(
        trainer, work / "project", result.toml_file, result.extra, *TRAIN_ARGS, "--run-dir", str(work / "run")
    )
    assert done.returncode == 0, done.stderr[-3000:]
    meta = read_metadata(next((work / "run" / "model").glob("*.safetensors")))
    # sd-scripts adds its (unset) network_dropout as "dropout" to every network's arguments (train_network.py).
    args = {"conv_dim": "8", "conv_alpha": "4", "dropout": None}
    assert (meta["ss_network_dim"], json.loads(meta["ss_network_args"])) == ("96", args)
    assert float(meta["ss_lr_warmup_steps"]) == 0 and meta["ss_lr_scheduler"] == "cosine"
    assert float(meta["ss_max_grad_norm"]) == 0 and float(meta["ss_huber_c"]) == 0
    assert float(meta["ss_prior_loss_weight"]) == 0
    _record_training("carried.json", result, done.returncode, meta)


# ---- 3. round trips of the GUI repository's configs ---------------------------------------------------------------


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _preset_base(work: Path, real_data: Path) -> Path:
    path = work / "preset-base.json"
    base = {
        "train_data_dir": str(real_data / "darius"),
        "output_dir": str(work / "out" / "model"),
        "logging_dir": str(work / "out" / "log"),
        "output_name": "preset-roundtrip",
    }
    path.write_text(json.dumps(base, indent=2), encoding="utf-8")
    return path


# Values older GUIs trained that the current GUI refuses, and the in-range value a field takes when the value itself
# goes on the command line (which sd-scripts lets win over the TOML): how the original trained, in the current GUI.
MOVABLE = {"caption_extension": "", "bucket_reso_steps": 128}


def _moved_to_command_line(config: dict[str, Any], reason: str) -> tuple[str, dict[str, Any]] | None:
    """An older GUI's value the current GUI refuses (its reason): the original as that GUI trained it."""
    key = reason.split(":", 1)[0]
    if key not in MOVABLE or key not in config:
        return None
    extra = f"{config.get('additional_parameters', '')} --{key} {config[key]}".strip()
    return key, {**config, key: MOVABLE[key], "additional_parameters": extra}


def _original(
    cached_gui: CachedGui, work: Path, local: dict[str, Any], base: Path | None
) -> tuple[Path, GuiResult, dict[str, str] | None]:
    """The GUI on the localized original (A), or on the original as an older GUI trained it where the current GUI
    refuses a value sd-scripts trains (then also the key moved and the GUI's reason for refusing the original)."""
    a_config = work / "original.json"
    a = cached_gui.check(a_config, work / "A", base=base)
    moved = None if a.ok else _moved_to_command_line(local, a.reason)
    if moved is None:
        return a_config, a, None
    a_config = work / "original-as-trained.json"
    a_config.write_text(json.dumps(moved[1], indent=2), encoding="utf-8")
    moved_a = cached_gui.check(a_config, work / "A", base=base)
    return a_config, moved_a, {"key": moved[0], "refused": a.reason}


@pytest.mark.parametrize("path", GUI_REPO, ids=_name)
def test_round_trip_of_the_gui_repositorys_config(path: Path, cached_gui: CachedGui, gui: Gui, real_data: Path) -> None:
    work = fresh(work_root() / "roundtrip" / _name(path).replace("/", "__").replace(" ", "_"))
    preset = path.parent.name == "presets"
    base = _preset_base(work, real_data) if preset else None
    original = json.loads(path.read_text(encoding="utf-8"))
    local, localized = localize(original, gui_root=gui.root / "kohya_ss", data=real_data / "darius", work=work / "out")
    (work / "original.json").write_text(json.dumps(local, indent=2), encoding="utf-8")
    a_config, a, moved = _original(cached_gui, work, local, base)
    imported = kohya_recipe("import", str(work / "original.json"), "-o", str(work / "recipe.toml"), "--json")
    outcome: dict[str, Any] = {"localized": localized, "moved_to_command_line": moved, "A": recorded_gui(a)}
    if imported.returncode != 0:
        outcome["import"] = imported.stderr.strip()
        record(f"gui-repo/{_name(path)}", outcome)
        assert "trains a model family kohya-recipe does not support" in imported.stderr
        return
    report = json.loads(imported.stdout)
    said = " ".join(report["repairs"] + report["notes"] + report["warnings"])
    if not a.ok and not a.reason.startswith("TypeError"):  # the GUI refuses the file: import says why, quoting it
        assert a.sentence in said, (a.reason, said)
    if moved is not None:  # ... also where it refuses a value older GUIs trained
        assert gui_sentence(moved["refused"]) in said, (moved, said)
    render = ["render", str(work / "recipe.toml"), "--gui-json", str(work / "rendered.json"), "--force"]
    rendered = kohya_recipe(*render, *(["--preset-only"] if preset else []))
    assert rendered.returncode == 0, rendered.stderr
    b = cached_gui.check(work / "rendered.json", work / "B", base=base)
    assert b.ok, b.line
    # Our JSON trains the same whether the user opened the Parameters accordion first or not.
    b_open = cached_gui.check(work / "rendered.json", work / "B-open", "--open", "Parameters", base=base)
    assert b_open.ok, b_open.line
    assert differences(b_open.effective(), b.effective()) == {}
    recipe = load_recipe(work / "recipe.toml")
    rendered_form = json.loads((work / "rendered.json").read_text(encoding="utf-8"))
    gui_steps = gui_steps_for({**(json.loads(base.read_text(encoding="utf-8")) if base else {}), **rendered_form})
    diff = differences(a.effective(), b.effective()) if a.ok else {}
    why = {key: explain(key, values[0], original) for key, values in diff.items()}
    outcome.update(
        B=recorded_gui(b),
        recipe=(work / "recipe.toml").read_text(encoding="utf-8"),
        rendered_sha256=hashlib.sha256((work / "rendered.json").read_bytes()).hexdigest(),
        gui_steps=gui_steps,
        differences={key: {"A": values[0], "B": values[1], "why": why[key]} for key, values in diff.items()},
    )
    stale = sorted(key for key, reason in why.items() if reason in (STALE_RANK, STALE_WARMUP))
    if stale:
        # The same original with the Parameters accordion opened first: the GUI then loads the file's own values.
        a_open = cached_gui.check(a_config, work / "A-open", "--open", "Parameters", base=base)
        open_diff = differences(a_open.effective(), b.effective()) if a_open.ok else None
        outcome["with_parameters_open"] = {"A": recorded_gui(a_open), "differences": open_diff}
    record(f"gui-repo/{_name(path)}", outcome)
    # B trains what the recipe says (this catches a stale form value on B's side too) ...
    assert trains_the_recipe(b.effective(), recipe, gui_steps) == {}
    # ... and what A trained, apart from A's known faults ...
    assert {key: values for key, values in diff.items() if why[key] is None} == {}
    # ... which are gone when the GUI loads the original with Parameters open (where it accepts the file then).
    if stale and open_diff is not None:
        assert {key for key in open_diff if explain(key, open_diff[key][0], original) != BUCKET_ONE} == set()


# ---- 4. real user-saved configs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", USER_SAVED, ids=lambda p: p.name)
def test_user_saved_config_imports_where_the_gui_loads_it(
    path: Path, cached_gui: CachedGui, gui: Gui, real_data: Path
) -> None:
    work = fresh(work_root() / "user-saved" / path.stem)
    imported = kohya_recipe("import", str(path), "--json")
    outcome: dict[str, Any] = {"import_exit": imported.returncode}
    try:
        original = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        original = None
    if original is None:  # the GUI's load fails on it as well
        result = cached_gui.check(path, work / "gui")
        outcome["gui"] = recorded_gui(result)
        record(f"user-saved/{path.stem}.json", outcome)
        assert not result.ok and imported.returncode == 1
        assert result.sentence in imported.stderr
        return
    local, localized = localize(original, gui_root=gui.root / "kohya_ss", data=real_data / "darius", work=work / "out")
    if "output_dir" not in local:  # a preset-like file: the GUI wants an output folder
        local.update(train_data_dir=str(real_data / "darius"), output_dir=str(work / "out" / "model"))
        localized += ["train_data_dir", "output_dir"]
    (work / "original.json").write_text(json.dumps(local, indent=2), encoding="utf-8")
    result = cached_gui.check(work / "original.json", work / "gui")
    outcome.update(localized=localized, gui=recorded_gui(result))
    if imported.returncode == 0:
        _, a, moved = _original(cached_gui, work, local, None)
        if a.ok:
            outcome.update(moved_to_command_line=moved, A=recorded_gui(a))
            outcome.update(_user_saved_round_trip(work, cached_gui, original, a))
    record(f"user-saved/{path.stem}.json", outcome)
    if "differences" in outcome:  # what the GUI trains from our JSON is what it trained from the original ...
        assert {key: d for key, d in outcome["differences"].items() if d["why"] is None} == {}
        assert outcome["trains_the_recipe"] == {}  # ... apart from its known faults, and what the recipe says
    if imported.returncode != 0:
        assert "trains a model family kohya-recipe does not support" in imported.stderr or not result.ok
        if not result.ok:
            assert result.sentence in imported.stderr
        return
    if not result.ok:
        report = json.loads(imported.stdout)
        said = " ".join(report["repairs"] + report["notes"] + report["warnings"])
        assert result.sentence in said, (result.reason, said)


def _user_saved_round_trip(work: Path, cached_gui: CachedGui, original: dict[str, Any], a: GuiResult) -> dict[str, Any]:
    """import -> render --gui-json -> the GUI (B), compared with what the GUI trained from the original (A)."""
    imported = kohya_recipe("import", str(work / "original.json"), "-o", str(work / "recipe.toml"))
    assert imported.returncode == 0, imported.stderr
    render = ["render", str(work / "recipe.toml"), "--gui-json", str(work / "rendered.json"), "--force"]
    rendered = kohya_recipe(*render)
    assert rendered.returncode == 0, rendered.stderr
    b = cached_gui.check(work / "rendered.json", work / "B")
    assert b.ok, b.line
    diff = differences(a.effective(), b.effective())
    gui_steps = gui_steps_for(json.loads((work / "rendered.json").read_text(encoding="utf-8")))
    return {
        "B": recorded_gui(b),
        "gui_steps": gui_steps,
        "differences": {
            key: {"A": values[0], "B": values[1], "why": explain(key, values[0], original)}
            for key, values in diff.items()
        },
        "trains_the_recipe": trains_the_recipe(b.effective(), load_recipe(work / "recipe.toml"), gui_steps),
    }
