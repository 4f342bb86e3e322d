"""The assembled report: real runs (tests/data/runs, from shared/fixtures/sd-scripts-runs), a real kohya-recipe
project around them, generated runs for the cases the fixtures lack, bad input, sweeps, copies and HTML."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from _report_util import (
    materialise_runs,
    record_offsets,
    report_data,
    synthetic_rows,
    write_run,
    write_safetensors,
)

from kohya_recipe.errors import EventsError
from kohya_recipe.layout import FACTS
from kohya_recipe.report.a1111 import a1111_snippet
from kohya_recipe.report.build import build_report
from kohya_recipe.report.events import write_scalars
from kohya_recipe.report.html import render_html
from kohya_recipe.report.locate import locate_run
from kohya_recipe.report.model import (
    SCHEMA,
    FailedRun,
    ReportError,
    RunDiverged,
    RunReport,
    SweepReport,
    require_recommendation,
)
from kohya_recipe.report.outputs import copy_picks
from kohya_recipe.report.run import report_run
from kohya_recipe.report.text import format_report
from kohya_recipe.sdscripts.prompts import PromptLine

ARTICLE_PROMPT = "1girl, testchar, braided hair, photo, realistic, 8K, HDR"  # tests/data/runs/article-mini/prompt.txt


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return materialise_runs(tmp_path_factory.mktemp("runs"))


def picks(rep: RunReport) -> list[tuple[int, list[str], str | None]]:
    return [(p.epoch, p.reasons, p.checkpoint.name if p.checkpoint else None) for p in rep.picks]


# --- the real runs ------------------------------------------------------------------------------------------------


def test_article_mini(runs: Path) -> None:
    rep = report_run(runs / "article-mini")
    assert rep.source.kind == "sd-scripts run" and rep.name == "testchar-1-A"
    assert picks(rep) == [
        (1, ["best"], "testchar-1-A-000001.safetensors"),
        (4, ["final"], "testchar-1-A.safetensors"),
    ]  # the unnumbered final file = epoch 4
    assert rep.confirmed == {1: True, 2: True, 3: True, 4: True}
    assert rep.finished and rep.num_epochs == 4 and rep.warnings == []
    best = rep.picks[0]
    assert best.a1111 == (
        f"{ARTICLE_PROMPT}, <lora:testchar-1-A-000001:0.8>\n"
        "Negative prompt: Anime, Cartoon, Fake, 3D render\n"
        "Steps: 2, Sampler: Euler a, Seed: 42, Size: 64x64"
    )
    assert rep.settings["network_dim"] == 1 and rep.settings["network_alpha"] == 0.75


def test_pick_best_two(runs: Path) -> None:
    rep = report_run(runs / "article-mini", pick_best=2)
    assert picks(rep) == [
        (1, ["best"], "testchar-1-A-000001.safetensors"),
        (4, ["rank 2", "final"], "testchar-1-A.safetensors"),
    ]
    assert [p.epoch for p in report_run(runs / "article-mini", pick_best=0).picks] == [4]


def test_interrupted(runs: Path) -> None:
    rep = report_run(runs / "interrupted")
    assert not rep.finished and rep.num_epochs == 20
    assert picks(rep) == [
        (1, ["best"], "testchar-1-A-000001.safetensors"),
        (3, ["last saved (no final file: the run did not finish)"], "testchar-1-A-000003.safetensors"),
    ]
    text = "\n".join(rep.warnings)
    assert "epoch 4 did not finish: 7 steps logged (steps 37-43)" in text
    assert "no final testchar-1-A.safetensors: the run did not finish (3 epoch files of 20 saved)" in text


def test_validation_ties(runs: Path) -> None:
    rep = report_run(runs / "validation")
    assert rep.ranking.metric == "validation"
    (p,) = rep.picks
    assert (p.epoch, p.reasons, p.tied_with) == (3, ["best", "final"], [1, 2])
    assert "tied with epochs 1, 2" in format_report(rep)
    assert "=1" in format_report(rep)


def test_resume(runs: Path) -> None:
    rep = report_run(runs / "resume")
    assert [r.epoch for r in rep.ranking.rows] == [3]
    assert picks(rep) == [(3, ["best", "final"], "testchar-1-B.safetensors")]
    assert rep.confirmed == {3: True}  # ss_steps 8 = the resumed segment's own last step


def test_resume_in_the_same_project_is_not_mixed(runs: Path, tmp_path: Path) -> None:
    # What one project folder holds after the `resume` fixture's run: the `validation` run's log folder, then the
    # resumed process's own timestamped folder (step tags restart at 1, epoch tags at 3), and its final file.
    run = shutil.copytree(runs / "validation", tmp_path / "run")
    shutil.copytree(runs / "resume" / "log", run / "log", dirs_exist_ok=True)
    shutil.copy2(runs / "resume" / "model" / "testchar-1-B.safetensors", run / "model")
    rep = report_run(run)
    first, resumed = "20261125234247/network_train", "20261125234346/network_train"
    assert rep.ranking is not None
    spans = [(r.epoch, r.segment, r.steps) for r in rep.ranking.rows]
    assert [(e, s, st.first_step, st.last_step) for e, s, st in spans if st is not None] == [
        (1, first, 1, 8),
        (2, first, 9, 16),
        (3, resumed, 1, 8),
    ]
    assert rep.confirmed == {1: True, 2: True, 3: True}  # the final file's ss_steps 8 is the resumed process's
    assert (
        f"{resumed}: a resumed training from epoch 3 replaces epoch 3 logged earlier; using the newer values"
        in rep.warnings
    )
    assert [s.step_offset for s in rep.ranking.segments] == [0, 16]


def test_json_schema(runs: Path) -> None:
    data = report_data(report_run(runs / "article-mini"))
    assert data["schema"] == SCHEMA and data["kind"] == "run"
    assert set(data) >= {
        "name",
        "path",
        "log_dir",
        "model_dir",
        "output_name",
        "metric",
        "num_epochs",
        "finished",
        "epochs",
        "incomplete",
        "picks",
        "checkpoints",
        "sample_prompt",
        "settings",
        "segments",
        "tags",
        "tags_not_read",
        "warnings",
    }
    assert data["metric"] == {
        "kind": "train",
        "tag": "loss/epoch_average",
        "label": "training loss (loss/epoch_average)",
        "lower_is_better": True,
        "z": 2.0,
        "tie_rtol": 1e-05,
    }
    e1 = data["epochs"][0]
    assert set(e1) == {
        "epoch",
        "metric",
        "se",
        "rank",
        "tied",
        "indistinguishable_from_best",
        "best",
        "train_loss",
        "validation_loss",
        "validation_divergence",
        "steps",
        "segment",
        "end_wall_time",
        "notes",
        "checkpoint",
        "samples",  # new in issue 15: the epoch's sample images
    }
    assert e1["checkpoint"]["file"] == "testchar-1-A-000001.safetensors" and e1["checkpoint"]["confirmed"]
    assert e1["steps"]["n"] == 12
    assert data["checkpoints"]["final"]["epoch"] == 4 and data["checkpoints"]["final"]["ss_steps"] == 48
    # the JSON path reads only what ranking needs (loss/average and lr/* feed the plots)
    assert data["tags"] == {"loss/current": 48, "loss/epoch_average": 4}
    assert data["tags_not_read"] == ["loss/average", "lr/group1", "lr/textencoder", "lr/unet"]  # but named
    full = report_data(report_run(runs / "article-mini", with_lr=True))
    assert len(full["tags"]) == 6 and full["tags_not_read"] == []
    assert [p["lora_name"] for p in data["picks"]] == ["testchar-1-A-000001", "testchar-1-A"]


def test_json_adds_fields_and_changes_none(runs: Path) -> None:
    """Issue 15: the JSON gains samples, divergence and pick checks; every earlier key is still there, same value."""
    data = report_data(report_run(runs / "article-mini"))
    new_top = {"samples", "diverged"}
    assert set(data) == {
        *new_top,
        "schema",
        "kind",
        "name",
        "path",
        "source_kind",
        "log_dir",
        "model_dir",
        "output_name",
        "metric",
        "epochs",
        "incomplete",
        "checkpoints",
        "sample_prompt",
        "segments",
        "tags",
        "tags_not_read",
        "picks",
        "settings",
        "num_epochs",
        "finished",
        "warnings",
    }
    assert data["diverged"] is None
    assert set(data["picks"][0]) == {
        "epoch",
        "reasons",
        "lora_name",
        "a1111",
        "tied_with",
        "metric",
        "rank",
        "checkpoint",
        # new
        "problem",
        "recommended",
        "weights_checked",
    }
    assert data["picks"][0]["weights_checked"] == {
        "ok": True,
        "scanned": 792,
        "non_finite": [],
        "not_scanned": [],
        "truncated": False,
        "error": None,
    }
    assert data["epochs"][1]["samples"] == [
        {
            "path": str(runs / "article-mini" / "model" / "sample" / "testchar-1-A_e000002_00_20261125234204_42.png"),
            "file": "testchar-1-A_e000002_00_20261125234204_42.png",
            "epoch": 2,
            "step": None,
            "prompt_index": 0,
            "time": "20261125234204",
            "seed": 42,
        }
    ]
    assert data["samples"]["prompts"] == [ARTICLE_PROMPT]
    assert data["samples"]["missing"] == [
        {"epoch": 1, "reason": "not sampled (sample_every_n_epochs = 2)", "expected": False},
        {"epoch": 3, "reason": "not sampled (sample_every_n_epochs = 2)", "expected": False},
    ]


# --- where things are ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real kohya-recipe project (rendered by kohya_recipe.render.project) holding the article-mini run's outputs."""
    from kohya_recipe.recipe.loading import deep_merge, recipe_from_dict
    from kohya_recipe.recipe.presets import load_preset
    from kohya_recipe.render.project import render_project

    data = deep_merge(
        load_preset("likeness-sd15"),
        {
            "preset": "likeness-sd15",
            "subject": {"trigger": "testchar", "class_token": "woman"},
            "output": {"name": "testchar", "major": 1, "letter": "A"},
            "samples": {
                "prompts": [
                    {
                        "prompt": "1girl, {trigger}, photo",
                        "negative": "Fake",
                        "steps": 35,
                        "cfg_scale": 5.5,
                        "width": 640,
                        "height": 768,
                        "seed": 277659558,
                    }
                ]
            },
        },
    )
    root = tmp_path_factory.mktemp("proj") / "CharacterAI"
    render_project(recipe_from_dict(data), root, sync_images=False)
    shutil.copytree(runs / "article-mini" / "log", root / "log", dirs_exist_ok=True)
    shutil.copytree(runs / "article-mini" / "model", root / "model", dirs_exist_ok=True)
    return root


def test_project_uses_the_recipe_prompt(project: Path) -> None:
    rep = report_run(project)
    assert rep.source.kind == "project" and rep.source.output_name == "testchar-1-A"
    assert rep.picks[0].a1111 == (
        "1girl, testchar, photo, <lora:testchar-1-A-000001:0.8>\n"
        "Negative prompt: Fake\n"
        "Steps: 35, Sampler: Euler a, CFG scale: 5.5, Seed: 277659558, Size: 640x768"
    )
    assert rep.settings["trigger"] == "testchar" and rep.settings["preset"] == "likeness-sd15"


def test_project_without_facts_reads_the_trainer_files(project: Path, tmp_path: Path) -> None:
    # A project rendered before the facts file existed: config.toml and its sample-prompts file say the same.
    old = shutil.copytree(project, tmp_path / "old")
    (old / FACTS).unlink()
    new, before = report_run(project), report_run(old)
    assert before.source.kind == "project" and before.source.output_name == new.source.output_name
    assert before.source.sample == new.source.sample
    assert [p.a1111 for p in before.picks] == [p.a1111 for p in new.picks]
    assert before.settings["trigger"] == "testchar" and before.settings["preset"] == "likeness-sd15"


def test_project_facts_say_where_things_are(project: Path, tmp_path: Path) -> None:
    moved = shutil.copytree(project, tmp_path / "moved")
    facts = json.loads((moved / FACTS).read_text())
    facts.update(output_name="elsewhere", model_dir="weights", sample_prompts=["a dog --w 512 --h 512"])
    (moved / FACTS).write_text(json.dumps(facts))
    src = locate_run(moved)
    assert (src.output_name, src.model_dir, src.sample and src.sample.prompt) == (
        "elsewhere",
        moved / "weights",
        "a dog",
    )


def test_project_log_folder_reports_the_project(project: Path) -> None:
    rep = report_run(project / "log")
    assert rep.source.kind == "project" and len(rep.files) == 4
    rep = report_run(project / "model")  # the checkpoint folder, where "no event files here" would be unhelpful
    assert rep.source.kind == "project" and len(rep.files) == 4 and rep.ranking.metric == "train"


def test_bare_log_folder_and_event_file(runs: Path, tmp_path: Path) -> None:
    shutil.copytree(runs / "article-mini" / "log", tmp_path / "logs")
    rep = report_run(tmp_path / "logs")
    assert rep.source.kind == "log folder" and rep.checkpoint_set is None
    assert [(p.epoch, p.reasons, p.lora_name, p.a1111) for p in rep.picks] == [
        (1, ["best"], None, None),
        (4, ["final"], None, None),
    ]
    rep = report_run(tmp_path / "logs", model_dir=runs / "article-mini" / "model")
    assert rep.picks[0].lora_name == "testchar-1-A-000001" and rep.confirmed[4]
    event = next((tmp_path / "logs").rglob("events.out.tfevents.*"))
    assert [r.epoch for r in report_run(event).ranking.rows] == [1, 2, 3, 4]
    rep = report_run(tmp_path / "logs", output_name="mine")
    # No checkpoint folder: no file to name, so no <lora:mine-000001:...> for a file nobody has seen (issue 15).
    assert [(p.lora_name, p.a1111) for p in rep.picks] == [(None, None), (None, None)]
    assert rep.picks[0].problem == "no checkpoint folder to look in (give --model-dir): the file cannot be named"


def test_locate_errors(runs: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no such file or folder"):
        locate_run(tmp_path / "nope")
    with pytest.raises(ReportError, match="is a checkpoint; use `kohya-recipe inspect`"):
        locate_run(runs / "article-mini" / "model" / "testchar-1-A.safetensors")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ReportError, match="not a TensorBoard event file"):
        locate_run(tmp_path / "notes.txt")


def test_broken_config_toml_degrades(runs: Path, tmp_path: Path) -> None:
    run = shutil.copytree(runs / "article-mini", tmp_path / "run")
    (run / "config.toml").write_text("output_name = [unclosed")
    rep = report_run(run)
    assert "config.toml: cannot read" in rep.warnings[0] and "using the default layout" in rep.warnings[0]
    assert rep.source.output_name == "testchar-1-A"  # inferred from the checkpoint names
    assert len(rep.files) == 4


# --- generated runs -----------------------------------------------------------------------------------------------


def make_run(
    root: Path,
    *,
    epochs: int = 8,
    steps: int = 20,
    save_every: int = 1,
    epoch_tag: str = "loss/epoch",
    name: str = "CharacterAI-1-A",
    means: list[float] | None = None,
    final: bool = True,
    nan_from_step: int | None = None,
    nan_weights: tuple[int, ...] = (),
) -> Path:
    """An sd-scripts-shaped run folder: config.toml, log/ with events, model/ with metadata-only checkpoints.

    ``nan_from_step``: every loss from that global step on is NaN (the training diverged there), and so is the
    epoch loss of every epoch that holds such a step. ``nan_weights``: epochs whose file holds a NaN weight.
    """
    rows, _ = synthetic_rows(
        epochs=epochs, steps_per_epoch=steps, epoch_tag=epoch_tag, epoch_means=means, noise=0.002, seed=11
    )
    if nan_from_step is not None:
        first_bad_epoch = (nan_from_step - 1) // steps + 1
        rows = [
            (
                t,
                s,
                math.nan
                if (t.startswith("loss/") and t != epoch_tag and s >= nan_from_step)
                or (t == epoch_tag and s >= first_bad_epoch)
                else v,
                w,
            )
            for t, s, v, w in rows
        ]
    root.mkdir(parents=True)
    (root / "config.toml").write_text(
        f'[training_arguments]\noutput_dir = "model"\nlogging_dir = "log"\noutput_name = "{name}"\n'
    )
    write_run(root / "log", rows)
    ends = {s: w for t, s, _v, w in rows if t == epoch_tag}
    for e in range(1, epochs + 1):
        last = e == epochs
        if last and not final:
            break
        if not last and e % save_every:
            continue
        meta = {
            "ss_epoch": str(e),
            "ss_steps": str(e * steps),
            "ss_num_epochs": str(epochs),
            "ss_training_finished_at": str(ends[e] + 0.5),
            "ss_network_dim": "96",
            "ss_network_alpha": "72.0",
        }
        write_safetensors(
            root / "model" / (f"{name}.safetensors" if last else f"{name}-{e:06d}.safetensors"),
            meta,
            nan_in=(1,) if e in nan_weights else (),
        )
    return root


ARTICLE_MEANS = [0.14, 0.12, 0.11, 0.105, 0.102, 0.095, 0.1, 0.099]  # lowest at epoch 6, as in the article


# --- a diverged run (issue 15 item 8) -------------------------------------------------------------------------------


def test_diverged_run_recommends_nothing(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", epochs=4, steps=5, nan_from_step=3, nan_weights=(1, 2, 3, 4))
    rep = report_run(run)
    assert rep.diverged is not None
    assert (rep.diverged.epoch, rep.diverged.step, rep.diverged.value) == (1, 3, "nan")
    assert rep.diverged.message == (
        "the run diverged: the loss is nan from step 3, epoch 1 and every epoch's loss is NaN/inf, so no epoch is "
        "recommended (lower the learning rate; with fp16, try bf16 or fp32)"
    )
    assert rep.picks == []
    text = format_report(rep)
    assert "DIVERGED: the run diverged: the loss is nan from step 3, epoch 1" in text
    assert "no pick: the run diverged" in text and "<lora:" not in text and "pick: epoch" not in text
    data = report_data(rep)
    assert data["picks"] == [] and data["diverged"]["step"] == 3 and data["diverged"]["epoch"] == 1
    assert data["diverged"]["message"] == rep.diverged.message
    with pytest.raises(RunDiverged) as info:
        require_recommendation(rep)
    assert info.value.exit_code == 6 and str(info.value) == f"{run}: {rep.diverged.message}"
    html = render_html(rep, plots=False)
    assert "Diverged." in html and "No pick: the run diverged." in html and "&lt;lora:" not in html


def test_divergence_in_a_later_epoch(tmp_path: Path) -> None:
    """Epochs 1-2 are sound, 3-4 diverged: epoch 1 is still recommended, the final epoch is not."""
    run = make_run(tmp_path / "run", epochs=4, steps=5, means=[0.1, 0.2, 0.3, 0.3], nan_from_step=12)
    rep = report_run(run)
    assert rep.diverged is None
    require_recommendation(rep)  # no exception: there is a sound pick
    best, final = rep.picks
    assert (best.epoch, best.recommended, best.lora_name) == (1, True, "CharacterAI-1-A-000001")
    assert best.a1111 == "<lora:CharacterAI-1-A-000001:0.8>"
    assert (final.epoch, final.recommended, final.a1111) == (4, False, None)
    assert final.problem == "its loss is nan: the training had diverged by epoch 4"
    assert "pick: epoch 4 (final): not recommended: its loss is nan" in format_report(rep)


def test_nan_weights_are_not_recommended_and_not_copied(tmp_path: Path) -> None:
    """A file whose tensors hold NaN is named, not recommended, and not copied into A1111's folder."""
    run = make_run(tmp_path / "run", epochs=3, steps=5, means=[0.1, 0.2, 0.3], nan_weights=(3,))
    rep = report_run(run)
    best, final = rep.picks
    assert best.recommended and best.weights is not None and best.weights.ok
    assert not final.recommended and final.a1111 is None
    assert final.problem == (
        "CharacterAI-1-A.safetensors: its weights hold NaN/inf in 1 of 3 tensors "
        "(first: lora_unet_block_1.lora_down.weight): the LoRA is broken"
    )
    assert report_data(rep)["picks"][1]["weights_checked"]["non_finite"] == ["lora_unet_block_1.lora_down.weight"]
    done = copy_picks(rep, tmp_path / "Lora")
    assert [w.path.name for w in done] == ["CharacterAI-1-A-000001.safetensors"]
    assert not (tmp_path / "Lora" / "CharacterAI-1-A.safetensors").exists()


def test_article_shape_old_tag_picks_six_and_eight(tmp_path: Path) -> None:
    rep = report_run(make_run(tmp_path / "run", means=ARTICLE_MEANS))
    assert rep.ranking.metric_tag == "loss/epoch"
    assert picks(rep) == [
        (6, ["best"], "CharacterAI-1-A-000006.safetensors"),
        (8, ["final"], "CharacterAI-1-A.safetensors"),
    ]
    assert rep.picks[0].a1111 == "<lora:CharacterAI-1-A-000006:0.8>"
    assert all(rep.confirmed.values())


def test_epochs_without_files(tmp_path: Path) -> None:
    rep = report_run(make_run(tmp_path / "run", epochs=5, save_every=2, means=[0.2, 0.1, 0.3, 0.3, 0.3]))
    assert sorted(rep.files) == [2, 4, 5]
    assert "no checkpoint for epochs 1, 3 (save_every_n_epochs, save_last_n_epochs, or deleted)" in rep.warnings
    best = rep.picks[0]
    assert best.epoch == 2 and best.checkpoint is not None
    text = format_report(rep)
    assert "(no file)" in text


def test_best_epoch_without_file_is_said_and_the_best_saved_epoch_is_picked(tmp_path: Path) -> None:
    """Issue 15 item 3: never a pick (or a <lora:...> snippet) for a file that does not exist."""
    run = make_run(tmp_path / "run", epochs=4, save_every=2, means=[0.1, 0.2, 0.3, 0.3])
    rep = report_run(run)
    best = rep.picks[0]
    assert best.epoch == 1 and best.checkpoint is None and best.lora_name is None and best.a1111 is None
    assert not best.recommended
    assert best.problem == (
        f"no checkpoint file for epoch 1 in {run / 'model'} "
        "(not saved: save_every_n_epochs or save_last_n_epochs; or deleted, or overwritten)"
    )
    assert [(p.epoch, p.reasons, p.lora_name) for p in rep.picks[1:]] == [
        (2, ["best with a file (rank 2)"], "CharacterAI-1-A-000002"),
        (4, ["final"], "CharacterAI-1-A"),
    ]
    assert all(p.a1111 and p.recommended for p in rep.picks[1:])
    text = format_report(rep)
    assert "<lora:CharacterAI-1-A-000001" not in text
    assert "pick: epoch 1 (best): not recommended: no checkpoint file for epoch 1" in text
    data = report_data(rep)
    assert [(p["epoch"], p["recommended"], p["a1111"] is None) for p in data["picks"]] == [
        (1, False, True),
        (2, True, False),
        (4, True, False),
    ]


def test_extended_run_final_overwritten_is_not_recommended(tmp_path: Path) -> None:
    """Issue 15 item 3, the report side: the run was extended 2 -> 3 epochs, and the old final file (epoch 2) was
    overwritten by the new one; the log still ranks epoch 2 best, but no file holds it any more."""
    run = make_run(tmp_path / "run", epochs=3, means=[0.2, 0.1, 0.3])
    (run / "model" / "CharacterAI-1-A-000002.safetensors").unlink()
    rep = report_run(run)
    best = rep.picks[0]
    assert (best.epoch, best.lora_name, best.a1111) == (2, None, None)
    assert "no checkpoint file for epoch 2" in (best.problem or "")
    assert "<lora:CharacterAI-1-A-000002:" not in format_report(rep)


def test_checkpoint_from_another_training(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", epochs=3)
    write_safetensors(
        run / "model" / "CharacterAI-1-A-000002.safetensors",
        {"ss_epoch": "2", "ss_steps": "999", "ss_training_finished_at": "100.0"},
    )
    rep = report_run(run)
    assert rep.confirmed == {1: True, 2: False, 3: True}
    text = "\n".join(rep.warnings)
    assert "CharacterAI-1-A-000002.safetensors: ss_steps=999 but the log's epoch 2 ends at step 40" in text
    assert "CharacterAI-1-A-000002.safetensors: saved before epoch 2 ended in the log" in text
    assert "[unconfirmed]" in format_report(rep)


def test_nan_loss_is_not_ranked_and_json_stays_valid(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=3, steps_per_epoch=5)
    rows = [(t, s, float("nan") if t == "loss/epoch_average" and s == 3 else v, w) for t, s, v, w in rows]
    write_run(tmp_path / "log", rows)
    rep = report_run(tmp_path / "log")
    assert rep.ranking.row(3).rank is None  # type: ignore[union-attr]
    assert any("epoch 3: loss is nan" in w for w in rep.warnings)
    data = report_data(rep)  # strict JSON: no NaN in the document
    assert data["epochs"][2]["train_loss"] is None


# --- bad input ----------------------------------------------------------------------------------------------------


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(EventsError, match="no TensorBoard event files"):
        report_run(tmp_path)


def test_zero_byte_event_file(tmp_path: Path) -> None:
    f = tmp_path / "log" / "x" / "network_train" / "events.out.tfevents.1.h.1.0"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"")
    with pytest.raises(EventsError, match=r"1 event file but no scalars in them yet \(.*empty file \(0 bytes\)"):
        report_run(tmp_path / "log")


def test_other_program(tmp_path: Path) -> None:
    write_scalars(
        tmp_path / "log" / "events.out.tfevents.1.h.1.0", [("train/accuracy", 1, 0.5, 10.0), ("eval/f1", 1, 0.4, 10.0)]
    )
    with pytest.raises(
        EventsError,
        match=r"no sd-scripts loss scalars \(loss/\.\.\.\); tags found: eval/f1, "
        r"train/accuracy",
    ):
        report_run(tmp_path / "log")


@pytest.mark.parametrize("log", ["zero", "other"])
def test_unusable_log_beside_checkpoints_shows_the_checkpoints(log: str, tmp_path: Path) -> None:
    # A 0-byte event file (killed before the first step) or another program's events next to real checkpoints:
    # no ranking, but the checkpoints and the final pick are still sound (issue 6: partial results).
    run = make_run(tmp_path / "run", epochs=3)
    event = next((run / "log").rglob("events.out.tfevents.*"))
    if log == "zero":
        event.write_bytes(b"")
    else:
        write_scalars(event, [("train/accuracy", 1, 0.5, 10.0)])
    rep = report_run(run)
    assert rep.ranking.metric == "none"
    assert picks(rep) == [(3, ["final"], "CharacterAI-1-A.safetensors")]
    expected = "no scalars in them yet" if log == "zero" else "tags found: train/accuracy"
    assert expected in rep.warnings[0] and rep.warnings[0].endswith("showing the checkpoints only")


def test_truncated_and_corrupt_logs_give_partial_reports(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=8, steps_per_epoch=20)
    path = write_run(tmp_path / "log", rows)
    data = path.read_bytes()
    offs = record_offsets(data)
    mid = offs[len(offs) // 2]
    path.write_bytes(data[: mid + 7])  # killed mid-write
    rep = report_run(tmp_path / "log")
    assert 1 <= len([r for r in rep.ranking.rows if r.logged]) < 8
    assert any("file ends inside a record" in w for w in rep.warnings)
    i = next(i for i in range(len(offs) // 2, len(offs)) if rows[i - 1][0] == "loss/current")
    bad = bytearray(data)
    bad[offs[i] + 20] ^= 0x10  # one flipped byte mid-file: TensorBoard's readers lose half the run here
    path.write_bytes(bytes(bad))
    rep = report_run(tmp_path / "log")
    assert len(rep.ranking.rows) == 8
    assert any("record payload fails its CRC" in w for w in rep.warnings)


def test_log_cut_short_before_the_checkpoints_it_should_show(runs: Path, tmp_path: Path) -> None:
    # article-mini's event file cut during epoch 3: the trainer went on to save epochs 3 and 4, so the log (not
    # the training) stopped early — "epoch 3 did not finish" would be wrong.
    run = shutil.copytree(runs / "article-mini", tmp_path / "run")
    event = next((run / "log").rglob("events.out.tfevents.*"))
    data = event.read_bytes()
    event.write_bytes(data[: len(data) * 2 // 3])
    rep = report_run(run)
    assert [r.epoch for r in rep.ranking.rows if r.logged] == [1, 2]
    assert rep.ranking.incomplete is not None and rep.ranking.incomplete.epoch == 3
    assert (
        "the log stops in epoch 3 (8 steps logged (steps 25-32) after the last epoch record), but checkpoints "
        "exist for epochs 3, 4: the event file was cut short or damaged, or a running trainer has not flushed it "
        "yet" in rep.warnings
    )
    assert not any("did not finish" in w for w in rep.warnings)
    assert [p.epoch for p in rep.picks] == [1, 4]


def test_bad_checkpoints(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", epochs=3)
    (run / "model" / "CharacterAI-1-A-000001.safetensors").write_bytes(b"\x80\x04 a pickle, not safetensors")
    write_safetensors(run / "model" / "CharacterAI-1-A-000002.safetensors", None)
    rep = report_run(run)
    text = "\n".join(rep.warnings)
    assert "CharacterAI-1-A-000001.safetensors: not a safetensors file" in text
    assert "CharacterAI-1-A-000002.safetensors: no ss_epoch in its metadata" in text
    assert rep.confirmed == {1: False, 2: False, 3: True}


def test_checkpoints_without_log(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", epochs=3)
    shutil.rmtree(run / "log")
    rep = report_run(run)
    assert rep.ranking.metric == "none"
    assert picks(rep) == [(3, ["final"], "CharacterAI-1-A.safetensors")]
    assert "epochs cannot be ranked; showing the checkpoints only" in rep.warnings[0]
    shutil.rmtree(run / "model")
    with pytest.raises(ReportError, match="no log folder .log/. and no checkpoints: has this run been trained"):
        report_run(run)


# --- small pieces -------------------------------------------------------------------------------------------------


def test_sample_prompt_is_read_as_sd_scripts_reads_it(runs: Path, tmp_path: Path) -> None:
    # sd-scripts matches the options case-insensitively (library/train_util.py line_to_prompt_dict): --W is a
    # width; a line's own --ss wins over the run's sample_sampler.
    run = shutil.copytree(runs / "article-mini", tmp_path / "run")
    (run / "prompt.txt").write_text(
        "# a comment\n\na cat, photo --N ugly --W 640 --H 768 --S 35 --L 5.5 --D 7 --ss ddim\n"
    )
    sample = locate_run(run).sample
    assert sample == PromptLine(
        prompt="a cat, photo", negative="ugly", width=640, height=768, steps=35, cfg_scale=5.5, seed=7, sampler="ddim"
    )
    assert report_run(run).picks[0].a1111 == (
        "a cat, photo, <lora:testchar-1-A-000001:0.8>\nNegative prompt: ugly\n"
        "Steps: 35, Sampler: DDIM, CFG scale: 5.5, Seed: 7, Size: 640x768"
    )


def test_prompt_file_that_is_not_lines(runs: Path, tmp_path: Path) -> None:
    run = shutil.copytree(runs / "article-mini", tmp_path / "run")
    (run / "config.toml").write_text((run / "config.toml").read_text().replace("prompt.txt", "prompt.toml"))
    (run / "prompt.toml").write_text("[prompt]\nwidth = 64\n")  # tables (load_prompts), not prompt lines
    assert locate_run(run).sample is None
    (run / "config.toml").write_text((run / "config.toml").read_text().replace("prompt.toml", "missing.txt"))
    src = locate_run(run)
    assert src.sample is None and src.warnings == [
        f"{run / 'missing.txt'}: file not found; the A1111 prompts go without the sample prompt"
    ]


def test_a1111_snippet() -> None:
    assert a1111_snippet("X-1-A-000006", None) == "<lora:X-1-A-000006:0.8>"
    s = PromptLine(prompt="a, b, ", negative="", sampler="dpmsolver", steps=20)
    assert a1111_snippet("n", s, 1.0) == "a, b, <lora:n:1>\nSteps: 20"  # no A1111 twin for "dpmsolver"


# --- sweeps -------------------------------------------------------------------------------------------------------


def test_sweep_of_fixture_runs(runs: Path, tmp_path: Path) -> None:
    for name in ("article-mini", "interrupted", "validation"):
        shutil.copytree(runs / name, tmp_path / "sweep" / name)
    rep = build_report(tmp_path / "sweep")
    assert isinstance(rep, SweepReport) and [r.name for r in rep.runs] == [
        "testchar-1-A",
        "testchar-1-A",
        "testchar-1-B",
    ]
    assert rep.names == ["article-mini", "interrupted", "validation"]  # unique, though two share an output name
    rows = rep.comparison
    assert [r.metric for r in rows] == ["train", "train", "validation"]
    assert [r.settings.get("num_epochs") for r in rows] == [4, 20, 3]
    assert all(r.sweep_rank is None for r in rows)  # training and validation losses are not comparable
    data = report_data(rep)
    assert data["kind"] == "sweep" and len(data["runs"]) == 3
    # Folder mode writes ss_resolution "(64, 64)", dataset_config mode a list in ss_datasets: both are 64x64.
    assert all("resolution" not in r.settings for r in rows)
    text = format_report(rep)
    assert text.startswith(f"sweep: {tmp_path / 'sweep'} (3 runs)")
    lines = text.splitlines()
    settings = lines[lines.index("settings that differ:") + 1 :]
    for run, epochs in (("article-mini", 4), ("interrupted", 20), ("validation", 3)):
        line = next(x for x in settings if x.startswith(f"  {run}: "))
        assert f"num_epochs={epochs}," in line  # each run's differing settings on its own line


def test_sweep_manifest_settings_and_failed_run(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    for letter, means in (("A", [0.2, 0.15]), ("B", [0.2, 0.1]), ("C", [0.3, 0.25])):
        make_run(root / f"X-1-{letter}", epochs=2, means=means, name=f"X-1-{letter}")
    (root / "X-1-D").mkdir()
    (root / "X-1-D" / "config.toml").write_text("")
    (root / "sweep.toml").write_text(
        'schema_version = 1\nkind = "kohya-recipe sweep"\nbase_output_name = "X-1-A"\n'
        + "".join(
            f'[[runs]]\nname = "X-1-{c}"\nfolder = "X-1-{c}"\n[runs.settings]\n"network.alpha" = {a}\n'
            for c, a in (("A", 48), ("B", 72), ("C", 96), ("D", 128))
        )
    )
    rep = build_report(root)
    assert isinstance(rep, SweepReport)
    rows = {r.run: r for r in rep.comparison}
    assert {k: (r.sweep_rank, r.best_epochs, r.settings) for k, r in rows.items()} == {
        "X-1-A": (2, [2], {"network.alpha": 48}),
        "X-1-B": (1, [2], {"network.alpha": 72}),
        "X-1-C": (3, [2], {"network.alpha": 96}),
    }
    assert rep.failed == [
        FailedRun("X-1-D", f"{root / 'X-1-D'}: no log folder (log/) and no checkpoints: has this run been trained yet?")
    ]


def test_sweep_settings_from_metadata(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    make_run(root / "a", epochs=2, name="a")
    run_b = make_run(root / "b", epochs=2, name="b")
    write_safetensors(
        run_b / "model" / "b.safetensors",
        {"ss_epoch": "2", "ss_steps": "40", "ss_num_epochs": "2", "ss_network_dim": "32", "ss_network_alpha": "72.0"},
    )
    rep = build_report(root)
    assert isinstance(rep, SweepReport)
    assert rep.settings == {"a": {"network_dim": 96}, "b": {"network_dim": 32}}


# --- copying ------------------------------------------------------------------------------------------------------


def test_copy_picks(runs: Path, tmp_path: Path) -> None:
    rep = report_run(runs / "article-mini")
    dest = tmp_path / "Lora"
    done = copy_picks(rep, dest)
    assert [(w.path.name, w.status) for w in done] == [
        ("testchar-1-A-000001.safetensors", "copied"),
        ("testchar-1-A.safetensors", "copied"),
    ]
    assert (dest / "testchar-1-A.safetensors").read_bytes() == (
        runs / "article-mini" / "model" / "testchar-1-A.safetensors"
    ).read_bytes()
    assert [w.status for w in copy_picks(rep, dest)] == ["same", "same"]
    (dest / "testchar-1-A.safetensors").write_bytes(b"someone else's file")
    with pytest.raises(ReportError, match="a different file is already there; not overwritten"):
        copy_picks(rep, dest)
    assert (dest / "testchar-1-A.safetensors").read_bytes() == b"someone else's file"
    assert [w.status for w in copy_picks(rep, dest, force=True)] == ["same", "replaced"]
    assert sorted(p.name for p in dest.iterdir()) == ["testchar-1-A-000001.safetensors", "testchar-1-A.safetensors"]


def test_copy_refuses_two_picks_with_one_name(runs: Path, tmp_path: Path) -> None:
    for name in ("article-mini", "interrupted"):  # both hold testchar-1-A-000001.safetensors, the best epoch
        shutil.copytree(runs / name, tmp_path / "sweep" / name)
    rep = build_report(tmp_path / "sweep")
    with pytest.raises(ReportError, match="two picks have the same file name"):
        copy_picks(rep, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_copy_without_files(runs: Path, tmp_path: Path) -> None:
    shutil.copytree(runs / "article-mini" / "log", tmp_path / "logs")
    with pytest.raises(ReportError, match="no recommended pick has a checkpoint file to copy"):
        copy_picks(report_run(tmp_path / "logs"), tmp_path / "out")


# --- HTML ---------------------------------------------------------------------------------------------------------


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href", "srcset", "action", "data", "poster") and value is not None:
                self.refs.append((tag, key, value))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_self_contained(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    c.close()
    for tag, key, value in c.refs:
        if tag == "a" and key == "href" and not value.startswith("#"):
            # a thumbnail's link to its own sample file (click for full size): a local file, never the network
            assert value.startswith("file:///") or "://" not in value, value
            assert Path(unquote(value.removeprefix("file://"))).name.endswith(".png"), value
            continue
        assert value.startswith(("data:image/png;base64,", "data:image/jpeg;base64,", "#")), (tag, key, value[:60])
    assert "script" not in c.tags and "link" not in c.tags and "iframe" not in c.tags
    assert "url(" not in html  # no CSS fetches either
    return c


def test_html_report_is_self_contained(runs: Path, tmp_path: Path) -> None:
    rep = report_run(runs / "article-mini", with_lr=True)
    html = render_html(rep)
    c = check_self_contained(html)
    images = [v for _, k, v in c.refs if k == "src"]
    assert len(images) == 2 + 3  # the samples of epochs 2 and 4; steps, epoch bars, learning rate (no validation)
    sample_dir = runs / "article-mini" / "model" / "sample"
    assert [v for t, k, v in c.refs if t == "a" and not v.startswith("#")] == [
        (sample_dir / "testchar-1-A_e000002_00_20261125234204_42.png").resolve().as_uri(),
        (sample_dir / "testchar-1-A_e000004_00_20261125234239_42.png").resolve().as_uri(),
    ]
    text = " ".join(c.text)
    assert "testchar-1-A-000001.safetensors" in text and "<lora:testchar-1-A-000001:0.8>" in text
    assert "Which epoch to keep?" in text
    assert "dtypes F16" in text and "['F16']" not in text  # lists shown as text, not as Python reprs
    (tmp_path / "r.html").write_text(html)
    _render_in_browser(tmp_path / "r.html", tmp_path)


def test_html_sweep_and_no_plots(runs: Path, tmp_path: Path) -> None:
    for name in ("validation", "resume"):
        shutil.copytree(runs / name, tmp_path / "sweep" / name)
    rep = build_report(tmp_path / "sweep", with_lr=True)
    c = check_self_contained(render_html(rep))
    assert sum(1 for _, k, _ in c.refs if k == "src") == 4 + 4 + 1  # each run's four plots and the sweep's
    assert [v for t, k, v in c.refs if t == "a"] == ["#run-0", "#run-1"]  # by position: both are testchar-1-B
    bare = check_self_contained(render_html(report_run(runs / "interrupted"), plots=False))
    assert not [r for r in bare.refs if r[1] == "src"]
    assert "did not finish: 7 steps logged" in " ".join(" ".join(bare.text).split())


def _render_in_browser(html_file: Path, tmp_path: Path) -> None:
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        return  # parsing above is the check on machines without a browser
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            f"--screenshot={shot}",
            "--window-size=1100,2000",
            html_file.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert shot.stat().st_size > 10_000


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="no headless browser on this machine",
)
def test_html_renders_in_headless_browser(runs: Path, tmp_path: Path) -> None:
    html_file = tmp_path / "r.html"
    html_file.write_text(render_html(report_run(runs / "validation", with_lr=True)))
    browser = next(b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b))
    out = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", "--dump-dom", html_file.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "testchar-1-B.safetensors" in out.stdout and "Which epoch to keep?" in out.stdout


def test_sweep_reports_progress(runs: Path, tmp_path: Path) -> None:
    for name in ("article-mini", "validation"):
        shutil.copytree(runs / name, tmp_path / "sweep" / name)
    calls: list[tuple[int, int]] = []
    build_report(tmp_path / "sweep", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


def test_project_that_logs_nothing_shows_its_checkpoints(project: Path, tmp_path: Path) -> None:
    quiet = shutil.copytree(project, tmp_path / "quiet")
    facts = json.loads((quiet / FACTS).read_text())
    (quiet / FACTS).write_text(json.dumps({**facts, "log_dir": None}))  # the recipe sets no log_with
    rep = report_run(quiet)
    assert rep.source.log_dir is None and rep.ranking.metric == "none" and len(rep.files) == 4
    assert (
        rep.warnings[0]
        == "the run logs nothing (no logging_dir): epochs cannot be ranked; showing the checkpoints only"
    )
