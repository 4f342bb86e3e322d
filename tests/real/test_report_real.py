"""The report of a real sd-scripts run with sample images (issue 15 item 1), end to end.

Build a project from four of the bundled example's images, train it for 3 epochs on the real trainer (the harness:
random SD 1.5 weights, 64 px, CPU) with two sample prompts sampled before training and after every epoch, then
report it: every epoch's samples are found and named in the JSON, and the HTML report's every image loads in
headless Chromium. Skipped without the harness (KOHYA_RECIPE_REAL_TRAINER) or without Chromium.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests._report_util import browser, images_loaded_in_browser
from tests.real.conftest import Trainer, kohya_recipe

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "CharacterAI"
IMAGES = ("01-front", "02-front", "20-front", "30-side-left")
EPOCHS = 3
RECIPE = """\
preset = "likeness-sd15"  # the article's: an epoch file and TensorBoard events every epoch
[dataset]
repeats = 1
[network]
rank = 4
alpha = 4.0
[training]
max_train_epochs = 3
[samples]
every_n_epochs = 1
at_first = true
[[samples.prompts]]
prompt = "1girl, {trigger}, photo"
steps = 4
seed = 1
[[samples.prompts]]
prompt = "{trigger}, upper body, smile"
steps = 4
seed = 2
"""


def test_real_run_samples_in_the_report(trainer: Trainer, tmp_path: Path) -> None:
    if browser() is None:
        pytest.skip("no headless Chromium here: `apt-get install chromium` (Debian) to run this check")
    images = tmp_path / "images"
    images.mkdir()
    for stem in IMAGES:
        for suffix in (".png", ".txt"):
            shutil.copyfile(EXAMPLE / f"{stem}{suffix}", images / f"{stem}{suffix}")
    (tmp_path / "recipe.toml").write_text(RECIPE)
    project = tmp_path / "project"
    sets = [arg for s in trainer.sets() for arg in ("--set", s)]
    built = kohya_recipe(
        "build", str(images), "--recipe", str(tmp_path / "recipe.toml"), "--trigger", "testchar",
        "--class", "woman", "-o", str(project), *sets,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    run = tmp_path / "run"
    steps = len(IMAGES) * EPOCHS
    trained = trainer.run(
        project, project / "config.toml", "--max-steps", str(steps), "--sample-reso", "64", "--run-dir", str(run)
    )
    assert trained.returncode == 0, trained.stderr[-3000:]

    page = tmp_path / "report.html"
    rep = kohya_recipe("report", str(run), "--json", "--html", str(page))
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    assert [e["epoch"] for e in data["epochs"]] == [1, 2, 3]
    for epoch in data["epochs"]:
        assert [s["prompt_index"] for s in epoch["samples"]] == [0, 1], epoch["epoch"]
        assert all(Path(s["path"]).is_file() and s["epoch"] == epoch["epoch"] for s in epoch["samples"])
    samples = data["samples"]
    assert [s["prompt_index"] for s in samples["before_training"]] == [0, 1]  # sample_at_first: e000000
    assert samples["prompts"] == ["1girl, testchar, photo", "testchar, upper body, smile"]
    assert samples["missing"] == [] and samples["count"] == 2 * (EPOCHS + 1)
    assert all(p["recommended"] and p["weights_checked"]["ok"] for p in data["picks"])  # real weights, finite

    total, loaded, bad = images_loaded_in_browser(page, tmp_path)
    # every sample (3 epochs and before training, 2 prompts) and the plots
    assert bad == [] and loaded == total >= 2 * (EPOCHS + 1) + 2

    text = kohya_recipe("report", str(run))
    assert text.returncode == 0
    for epoch in data["epochs"]:
        for s in epoch["samples"]:
            assert s["file"] in text.stdout
