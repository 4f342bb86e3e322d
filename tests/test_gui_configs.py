"""Real kohya_ss configs through ``import`` and ``render --gui-json``, checked against what the real GUI did (issue 12).

The acceptance tests against the real GUI and trainer (tests/real/test_gui_real.py) recorded, for each config, what
the GUI trained from it (tests/data/gui/recorded/, written with ``KOHYA_RECIPE_REAL_RECORD=1``). These tests check
the same things without the harnesses, so CI covers them:

* every config of the GUI repository (45) and every real user-saved config (27) imports, each repair named by its
  key; a refusal only where the recorded GUI refused too (the import quotes the GUI's sentence) or for a model
  family kohya-recipe does not train;
* ``import`` -> ``render --gui-json`` gives a form the GUI turns (:func:`kohya_recipe.gui.translate.gui_to_toml`,
  the GUI's ``train_model`` reproduced) into what the recorded GUI trained from the JSON we rendered (B), and into
  what it trained from the original (A) apart from A's known faults (:func:`tests._gui_util.explain`), each the
  one recorded;
* every preset's GUI JSON trains, loaded into a fresh form, what the recorded GUI trained from it, and that is what
  the recipe says; what the form cannot hold (zeros, a warmup, conv_dim) reaches the trainer on the command line.

The GUI ran with its checkout at :data:`RECORDED_GUI_ROOT` and the sample data at :data:`RECORDED_DATA`; here both
are made in a temp folder (the same folder names and image count) and paths are compared relative to them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kohya_recipe.gui.form import gui_split
from kohya_recipe.gui.render import _fresh_form
from kohya_recipe.gui.translate import gui_script, gui_to_toml
from kohya_recipe.recipe.loading import load_recipe
from tests._cli_util import run_cli
from tests._gui_util import (
    BUCKET_ONE,
    CARRIED_RECIPE,
    STALE_RANK,
    STALE_WARMUP,
    differences,
    effective,
    explain,
    gui_sentence,
    gui_steps_for,
    localize,
    trains_the_recipe,
)
from tests._project_util import make_images

DATA = Path(__file__).parent / "data" / "gui"
RECORDED = DATA / "recorded"
GUI_REPO = sorted((DATA / "gui-repo").glob("*/*.json"))
USER_SAVED = sorted((DATA / "user-saved").glob("*.json"))
PRESETS = ("likeness-sd15", "style-sd15", "likeness-sdxl")
# Where the recording machine had the GUI checkout and the sample data (tests/real/conftest.py).
RECORDED_GUI_ROOT = "/work/harness-gui/kohya_ss"
RECORDED_DATA = "/work/harness-data/darius"
SUBSET = "10_darius kawasaki person"  # the one folder of the sample data: 8 images, 10 repeats
CAPTION = "a painting of a steam punk skull with a gas mask , by darius kawasaki"
UNSUPPORTED = "trains a model family kohya-recipe does not support"


@dataclass(frozen=True)
class Places:
    """This machine's stand-ins for the GUI checkout (its ``test/img`` and ``test/config``) and the sample data."""

    root: Path

    @property
    def gui_root(self) -> Path:
        return self.root / "kohya_ss"

    @property
    def data(self) -> Path:
        return self.root / "darius"

    def recorded_paths(self, value: Any) -> Any:
        """``value`` with this machine's stand-in folders spelled as on the recording machine."""
        if isinstance(value, str):
            return value.replace(str(self.gui_root), RECORDED_GUI_ROOT).replace(str(self.data), RECORDED_DATA)
        return value


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Places:
    p = Places(tmp_path_factory.mktemp("gui-places"))
    for images in (p.data / SUBSET, p.gui_root / "test" / "img" / SUBSET):
        make_images(images, [(512, 512)] * 8, caption=CAPTION)
    for name in ("dataset.toml", "dataset-masked_loss.toml"):  # read by neither the GUI's load nor import
        (p.gui_root / "test" / "config").mkdir(parents=True, exist_ok=True)
        (p.gui_root / "test" / "config" / name).write_text("# stand-in\n", encoding="utf-8")
    return p


def recorded(rel: str) -> dict[str, Any]:
    return json.loads((RECORDED / rel).read_text(encoding="utf-8"))


def recorded_effective(gui: dict[str, Any]) -> dict[str, Any]:
    """What sd-scripts trains from a recorded GUI run (its TOML's relevant keys and its command line)."""
    assert gui["exit"] == 0, gui["reason"]
    return effective(gui["toml"], gui["extra"], gui["script"])


def gui_trains(places: Places, form_json: Path, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """What sd-scripts trains when the GUI loads ``form_json`` (after ``base``) into a fresh form and trains it."""
    form = {**_fresh_form(), **(base or {}), **json.loads(form_json.read_text(encoding="utf-8"))}
    toml = gui_to_toml(form, cwd=places.gui_root)
    values = effective(toml, gui_split(form["additional_parameters"]), gui_script(form))
    return {key: places.recorded_paths(value) for key, value in values.items()}


def import_json(config: Path, recipe: Path) -> tuple[int, dict[str, Any] | None, str]:
    code, out, err = run_cli("import", config, "-o", recipe, "--json")
    return code, (json.loads(out) if code == 0 else None), err


def said(report: dict[str, Any]) -> str:
    return " ".join(report["repairs"] + report["notes"] + report["warnings"])


def assert_repairs_named(report: dict[str, Any], original: dict[str, Any]) -> None:
    """Every repair names the key it changed (one the file has, or its GUI name) and says what became of it."""
    for line in report["repairs"]:
        key, sep, what = line.partition(": ")
        assert sep and what, line
        assert key in original or key in _fresh_form(), line


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


# ---- the GUI repository's 45 configs: import -> render -> the GUI ------------------------------------------------


@pytest.mark.parametrize("path", GUI_REPO, ids=_name)
def test_gui_repository_config_round_trips_as_the_gui_trained_it(path: Path, places: Places, tmp_path: Path) -> None:
    rec = recorded(f"gui-repo/{_name(path)}")
    original = json.loads(path.read_text(encoding="utf-8"))
    local, localized = localize(original, gui_root=places.gui_root, data=places.data, work=tmp_path / "out")
    assert localized == rec["localized"]
    (tmp_path / "original.json").write_text(json.dumps(local, indent=2), encoding="utf-8")
    code, report, err = import_json(tmp_path / "original.json", tmp_path / "recipe.toml")
    if "import" in rec:  # only a family kohya-recipe does not train
        assert (code, err.count("\n")) == (1, 1) and UNSUPPORTED in err
        assert err.split("original.json: ")[1] == rec["import"].split("original.json: ")[1] + "\n"
        return
    assert code == 0 and report is not None, err
    assert_repairs_named(report, original)
    a = rec["A"]
    if a["exit"] != 0 and not a["reason"].startswith("TypeError"):  # the GUI refused it: the import says why
        assert gui_sentence(a["reason"]) in said(report)
    if rec["moved_to_command_line"]:  # it refused a value older GUIs trained: the import keeps it, quoting the GUI
        assert gui_sentence(rec["moved_to_command_line"]["refused"]) in said(report)
    preset = path.parent.name == "presets"
    render: list[str | Path] = ["render", tmp_path / "recipe.toml", "--gui-json", tmp_path / "rendered.json", "--force"]
    code, _, err = run_cli(*render, *(["--preset-only"] if preset else []))
    assert code == 0, err
    base = {"train_data_dir": str(places.data), "output_dir": "", "logging_dir": ""} if preset else None
    ours = gui_trains(places, tmp_path / "rendered.json", base)
    # What the GUI trained from our JSON is what our JSON says ...
    assert differences(recorded_effective(rec["B"]), ours) == {}
    # ... and what it trained from the original, apart from the recorded faults of the original's side ...
    if a["exit"] == 0:
        diff = differences(recorded_effective(a), ours)
        why = {key: explain(key, values[0], original) for key, values in diff.items()}
        assert why == {key: value["why"] for key, value in rec["differences"].items()}
        assert None not in why.values()
    # ... and what the recipe says, at the length the GUI computes from the data where it computes one.
    form = {**(base or {}), **json.loads((tmp_path / "rendered.json").read_text(encoding="utf-8"))}
    assert gui_steps_for(form, places.gui_root) == rec["gui_steps"]
    assert trains_the_recipe(ours, load_recipe(tmp_path / "recipe.toml"), rec["gui_steps"]) == {}


def test_the_round_trips_know_each_kind_of_fault_of_the_original() -> None:
    """The recorded differences are the GUI's stale rank and warmup and the trainer-refused bucket step, each where
    the file says otherwise (a guard that explain() is exercised by real cases, with concrete values)."""
    lokr = recorded("gui-repo/presets/SDXL - 1 image LoRA v1.0.json")["differences"]
    assert (lokr["network_dim"]["A"], lokr["network_dim"]["B"], lokr["network_dim"]["why"]) == (
        8.0,
        100000.0,
        STALE_RANK,
    )
    ada = recorded("gui-repo/presets/SDXL - LoRA adafactor v1.0.json")["differences"]
    assert (ada["lr_warmup_steps"]["A"], ada["lr_warmup_steps"]["B"], ada["lr_warmup_steps"]["why"]) == (
        0.1,
        None,
        STALE_WARMUP,
    )
    dylora = recorded("gui-repo/test/DyLoRA-Adafactor-toml.json")["differences"]
    assert (dylora["bucket_reso_steps"]["A"], dylora["bucket_reso_steps"]["B"]) == (1.0, None)  # 64: the default
    assert dylora["bucket_reso_steps"]["why"] == BUCKET_ONE
    found = {
        value["why"]
        for rec in map(recorded, (f"gui-repo/{_name(p)}" for p in GUI_REPO))
        for value in rec.get("differences", {}).values()
    }
    assert found == {STALE_RANK, STALE_WARMUP, BUCKET_ONE}


# ---- 27 real user-saved configs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", USER_SAVED, ids=lambda p: p.name)
def test_user_saved_config_imports_where_the_gui_loads_it(path: Path, places: Places, tmp_path: Path) -> None:
    rec = recorded(f"user-saved/{path.stem}.json")
    gui = rec["gui"]
    try:
        original = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # not JSON: the GUI's load fails on it as well, and import quotes the parser's sentence
        code, _, err = run_cli("import", path, "--json")
        assert (code, rec["import_exit"], gui["exit"]) == (1, 1, 1)
        assert err.count("\n") == 1 and gui_sentence(gui["reason"]) in err
        return
    local, localized = localize(original, gui_root=places.gui_root, data=places.data, work=tmp_path / "out")
    if "output_dir" not in local:  # a preset-like file: the GUI wants an output folder
        local.update(train_data_dir=str(places.data), output_dir=str(tmp_path / "out" / "model"))
        localized += ["train_data_dir", "output_dir"]
    assert localized == rec["localized"]
    (tmp_path / "original.json").write_text(json.dumps(local, indent=2), encoding="utf-8")
    code, report, err = import_json(tmp_path / "original.json", tmp_path / "recipe.toml")
    assert code == rec["import_exit"], err
    if report is None:  # refused: a family kohya-recipe does not train (the GUI loads it)
        assert gui["exit"] == 0 and err.count("\n") == 1 and UNSUPPORTED in err
        return
    assert_repairs_named(report, original)
    if gui["exit"] != 0:  # the GUI refuses a value the trainer takes: import repairs or keeps it, quoting the GUI
        assert gui_sentence(gui["reason"]) in said(report)
    if "A" not in rec:  # the GUI trains no form of it (a repaired optimizer_args: older GUIs passed it as text)
        assert gui["exit"] != 0
        return
    code, _, err = run_cli("render", tmp_path / "recipe.toml", "--gui-json", tmp_path / "rendered.json", "--force")
    assert code == 0, err
    ours = gui_trains(places, tmp_path / "rendered.json")
    # As for the GUI repository's configs: what the GUI trained from our JSON, and from the original apart from
    # its recorded faults, and what the recipe says.
    assert differences(recorded_effective(rec["B"]), ours) == {}
    diff = differences(recorded_effective(rec["A"]), ours)
    why = {key: explain(key, values[0], original) for key, values in diff.items()}
    assert why == {key: value["why"] for key, value in rec["differences"].items()}
    assert None not in why.values()
    steps = gui_steps_for(json.loads((tmp_path / "rendered.json").read_text(encoding="utf-8")), places.gui_root)
    assert steps == rec["gui_steps"]
    assert trains_the_recipe(ours, load_recipe(tmp_path / "recipe.toml"), steps) == {}


def test_user_saved_configs_the_gui_refuses_are_repaired_or_kept_saying_why() -> None:
    """The recorded refusals of the real GUI, with concrete values: a command-line ``optimizer_args`` and a bucket
    step above the slider."""
    loha = recorded("user-saved/_extracted__rentry-dadaptation-guide-2023-04__loha.json")
    assert loha["import_exit"] == 0 and "is not a valid settings string" in loha["gui"]["reason"]
    code, out, err = run_cli(
        "import", DATA / "user-saved" / "_extracted__rentry-dadaptation-guide-2023-04__loha.json", "--json"
    )
    assert code == 0, err
    repairs = [line for line in json.loads(out)["repairs"] if line.startswith("optimizer_args: ")]
    assert len(repairs) == 1 and '"decouple=True" "weight_decay=0.01" "betas=0.9,0.99"' in repairs[0]
    pony = "bluntstone__kohya_ss_setting_ti__pony_civitai"
    assert (
        recorded(f"user-saved/{pony}.json")["gui"]["reason"]
        == "bucket_reso_steps: Value 256 is greater than maximum value 128."
    )
    code, out, err = run_cli("import", DATA / "user-saved" / f"{pony}.json", "--json")
    assert code == 0, err
    assert "Value 256 is greater than maximum value 128." in said(json.loads(out))
    assert json.loads(out)["recipe"]["training"]["bucket_reso_steps"] == 256


# ---- every preset's GUI JSON, and what the form cannot hold --------------------------------------------------------


def _build(places: Places, preset: str, out: Path, *extra: str) -> Path:
    args: list[str | Path] = ["build", places.data / SUBSET, "--preset", preset, "--trigger", "dkx", "--class", "man"]
    code, _, err = run_cli(*args, *extra, "--out", out, "--force")
    assert code == 0, err
    return out / "dkx-1-A.json"


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_gui_json_trains_what_the_recorded_gui_trained(preset: str, places: Places, tmp_path: Path) -> None:
    rec = recorded(f"presets/{preset}.json")
    config = _build(places, preset, tmp_path / "project")
    recipe = load_recipe(tmp_path / "project" / "resolved-recipe.toml")
    ours = {
        key: value.replace(str(tmp_path / "project"), rec["project"]) if isinstance(value, str) else value
        for key, value in gui_trains(places, config).items()
    }
    for state in ("fresh", "after a LoCon config"):
        assert differences(recorded_effective(rec["gui"][state]), ours) == {}, state
    assert trains_the_recipe(ours, recipe) == {}
    # The carried values are on the command line, where the GUI's stale form values cannot reach them.
    assert rec["gui"]["fresh"]["extra"][:2] == ["--network_dim", str(recipe.network.rank)]


@pytest.mark.parametrize("preset", ("likeness-sd15", "style-sd15"))
def test_preset_trained_from_the_guis_toml_in_the_real_trainer(preset: str, places: Places, tmp_path: Path) -> None:
    """The recorded real training of the GUI's TOML (and command line) for our JSON: exit 0, 10 steps, our rank, and
    relative-step Adafactor's own schedule without the stale warmup that used to stop sd-scripts."""
    rec = recorded(f"presets-train/{preset}.json")
    _build(places, preset, tmp_path / "project")
    recipe = load_recipe(tmp_path / "project" / "resolved-recipe.toml")
    assert (rec["trainer_exit"], rec["metadata"]["ss_max_train_steps"]) == (0, "10")
    assert rec["metadata"]["ss_network_dim"] == str(recipe.network.rank)
    assert float(rec["metadata"]["ss_lr_warmup_steps"]) == 0
    assert rec["metadata"]["ss_lr_scheduler"].startswith("adafactor")
    assert rec["gui"]["extra"] == ["--network_dim", str(recipe.network.rank)]


def test_what_the_form_cannot_hold_reaches_the_trainer(places: Places, tmp_path: Path) -> None:
    """A warmup of 0 with cosine, Kohya LoCon's conv_dim, and zeros the GUI drops: our JSON carries them on the command
    line, the recorded GUI's TOML lacks them and its command line has them, and the real trainer trained them."""
    (tmp_path / "recipe.toml").write_text(CARRIED_RECIPE, encoding="utf-8")
    config = _build(places, "likeness-sd15", tmp_path / "project", "--recipe", str(tmp_path / "recipe.toml"))
    rec = recorded("carried.json")
    ours, theirs = gui_trains(places, config), recorded_effective(rec["gui"])
    # The project folders are each run's own (the recording's under the real tests' work folder).
    assert [d.pop("train_data_dir").endswith("/project/img") for d in (ours, theirs)] == [True, True]
    assert differences(theirs, ours) == {}
    assert {key: ours.get(key) for key in ("max_grad_norm", "huber_c", "prior_loss_weight", "lr_warmup_steps")} == {
        "max_grad_norm": 0.0,
        "huber_c": 0.0,
        "prior_loss_weight": 0.0,
        "lr_warmup_steps": None,  # 0: sd-scripts' default, so effective() leaves it out
    }
    assert ours["network_args"] == {"conv_dim": 8.0, "conv_alpha": 4.0}
    assert not {"max_grad_norm", "huber_c", "prior_loss_weight"} & set(rec["gui"]["toml"])
    meta = rec["metadata"]
    assert (rec["trainer_exit"], meta["ss_network_dim"], meta["ss_lr_scheduler"]) == (0, "96", "cosine")
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "8", "conv_alpha": "4", "dropout": None}
    assert [
        float(meta[k]) for k in ("ss_lr_warmup_steps", "ss_max_grad_norm", "ss_huber_c", "ss_prior_loss_weight")
    ] == [0.0] * 4
