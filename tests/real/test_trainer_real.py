"""`build` -> `train` on the REAL sd-scripts trainer, and the step plan against what the trainer itself prints.

A kohya folder with two subsets of mixed aspect ratios (64x96, 96x64, 80x128, ... in buckets 64..128) is built into a
project, planned, and trained for real through `kohya-recipe train --sd-scripts <harness> --python <harness venv>`:
the run must end with exit 0 and its final checkpoint, and the trainer's own "num batches per epoch" and "total
optimization steps" must equal the plan's. Needs KOHYA_RECIPE_REAL_TRAINER (see conftest.py).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from PIL import Image

from tests.real.conftest import Trainer, kohya_recipe

# At resolution 128 (buckets 64..256 in steps of 64) these land in several buckets: 64x256, 128x128, 192x64, ...
SIZES = [(64, 200), (200, 64), (128, 128), (96, 160), (160, 96), (128, 128)]


def _kohya_folder(root: Path) -> Path:
    """train/2_zed man (6 mixed-aspect images) and train/1_zed style (3), with captions."""
    rng = random.Random(7)
    for folder, sizes, caption in (("2_zed man", SIZES, "1boy, zed, red hair, 3D render"),
                                   ("1_zed style", SIZES[:3], "zed style, landscape")):  # fmt: skip
        sub = root / "train" / folder
        sub.mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new("RGB", size, (rng.randrange(256), 90, 40)).save(sub / f"{i}.png")
            (sub / f"{i}.txt").write_text(caption + "\n", encoding="utf-8")
    return root / "train"


def _printed(stdout: str, label: str) -> int:
    """A number sd-scripts prints in its summary, e.g. 'num batches per epoch / ...: 15'."""
    m = re.search(rf"{re.escape(label)}[^\n]*?:\s*(\d+)\s*$", stdout, re.MULTILINE)
    assert m, f"the trainer did not print {label!r}"
    return int(m.group(1))


def test_build_train_and_plan_equal_the_real_trainer(trainer: Trainer, tmp_path: Path) -> None:
    images = _kohya_folder(tmp_path)
    sets = [
        *trainer.sets(),
        "training.resolution=128",
        "training.max_bucket_reso=256",
        "training.max_train_epochs=1",
        "samples.prompts=[]",
    ]
    built = kohya_recipe("build", str(images), "--trigger", "zed", "--class", "man", "--out", str(tmp_path / "p"),
                         *(arg for s in sets for arg in ("--set", s)), "--json")  # fmt: skip
    assert built.returncode == 0, built.stderr
    plan = json.loads(built.stdout)["plan"]
    assert [s["repeats"] for s in plan["subsets"]] == [1, 2]  # each kohya folder keeps its repeats

    run = kohya_recipe("train", str(tmp_path / "p"), "--sd-scripts", str(trainer.sd_scripts), "--python",
                       str(trainer.python), "--quiet", "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(run.stdout)
    assert record["outcome"] == "success"
    final = tmp_path / "p" / "model" / f"{record['output_name']}.safetensors"
    assert final.is_file()

    raw = next((tmp_path / "p" / "log").glob("train-*.log")).read_text(encoding="utf-8", errors="replace")
    assert _printed(raw, "num batches per epoch") == plan["batches_per_epoch"]
    assert _printed(raw, "total optimization steps") == plan["max_train_steps"]
    logged = {
        (int(w), int(h), int(n))
        for w, h, n in re.findall(r"bucket \d+: resolution \((\d+), (\d+)\), count: (\d+)", raw)
    }
    planned = {(b["resolution"][0], b["resolution"][1], b["count"]) for b in plan["buckets"]}
    assert len(planned) > 1 and logged == planned
