"""Sample images per epoch (issue 15 item 1): sd-scripts' file names read back, each epoch's samples found, the
missing ones said, and the HTML grid of epochs x prompts (thumbnails, full size, none; a sweep side by side).

The sample PNGs of tests/data/runs/article-mini are the real run's (shared/fixtures/sd-scripts-runs, 64 px, epochs
2 and 4: ``sample_every_n_epochs = 2``)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from _report_util import browser, images_loaded_in_browser, materialise_run, report_data

from kohya_recipe.report.html import THUMB_SIZE, render_html
from kohya_recipe.report.locate import locate_run
from kohya_recipe.report.run import report_run
from kohya_recipe.report.samplenames import parse_sample_name
from kohya_recipe.report.samples import SampleSettings, scan_samples
from kohya_recipe.report.text import format_report

E2 = "testchar-1-A_e000002_00_20261125234204_42.png"
E4 = "testchar-1-A_e000004_00_20261125234239_42.png"


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return materialise_run("article-mini", tmp_path)


def _png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


# --- names --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (E2, ("testchar-1-A", 2, None, 0, "20261125234204", 42)),
        ("tst_e000000_00_20261125223441_42.png", ("tst", 0, None, 0, "20261125223441", 42)),  # --sample_at_first
        ("tst_e000002_01_20261125224017.png", ("tst", 2, None, 1, "20261125224017", None)),  # no --d: no seed
        ("my_lora_v2_000200_00_20261125224017_7.png", ("my_lora_v2", None, 200, 0, "20261125224017", 7)),  # step
        ("e000003_12_20261125224017_5.png", (None, 3, None, 12, "20261125224017", 5)),  # no output_name
        ("x_e000001_100_20261125224017_5.png", ("x", 1, None, 100, "20261125224017", 5)),  # 100+ prompts
        ("x_e1000000_00_20261125224017.png", ("x", 1000000, None, 0, "20261125224017", None)),
    ],
)
def test_sample_names(name: str, expected: tuple[object, ...]) -> None:
    s = parse_sample_name(Path("model/sample") / name)
    assert s is not None
    assert (s.name, s.epoch, s.step, s.prompt_index, s.time, s.seed) == expected


@pytest.mark.parametrize(
    "name",
    [
        "testchar-1-A-000002.safetensors",
        "cover.png",
        "x_e000002_00_2026112523420_42.png",
        "x_e02_00_20261125234204.png",
    ],
)
def test_other_files_are_not_samples(name: str) -> None:
    assert parse_sample_name(Path(name)) is None


# --- a run's samples ----------------------------------------------------------------------------------------------


def test_real_run_samples_on_their_epochs(run: Path) -> None:
    rep = report_run(run)
    assert {r.epoch: [s.file for s in r.samples] for r in rep.ranking.rows} == {1: [], 2: [E2], 3: [], 4: [E4]}
    sset = rep.samples
    assert sset is not None and sset.prompts == ["1girl, testchar, braided hair, photo, realistic, 8K, HDR"]
    assert sset.status == "2 sample images: 1 prompt, 2 epochs"
    assert [(m.epoch, m.reason, m.expected) for m in sset.missing] == [
        (1, "not sampled (sample_every_n_epochs = 2)", False),
        (3, "not sampled (sample_every_n_epochs = 2)", False),
    ]
    text = format_report(rep)
    assert f"  epoch 2       0  {E2}" in text and f"  epoch 4       0  {E4}" in text
    assert "  epochs 1, 3: not sampled (sample_every_n_epochs = 2)" in text
    assert "  prompt 0: 1girl, testchar, braided hair, photo, realistic, 8K, HDR" in text


def test_an_expected_sample_that_is_missing_is_said(run: Path) -> None:
    (run / "model" / "sample" / E4).unlink()  # e.g. the run was stopped while sampling epoch 4
    rep = report_run(run)
    assert rep.samples is not None
    assert rep.samples.status == "1 sample image: 1 prompt, 1 epoch; missing for epoch 4"
    text = format_report(rep)
    assert (
        "  epoch 4: missing: this epoch should have been sampled (interrupted while sampling, no prompt file, or deleted)"
        in text
    )
    assert report_data(rep)["samples"]["missing"][-1] == {
        "epoch": 4,
        "reason": "missing: this epoch should have been sampled (interrupted while sampling, no prompt file, or "
        "deleted)",
        "expected": True,
    }


def test_sampling_off_and_interrupted_are_said(tmp_path: Path) -> None:
    rep = report_run(materialise_run("interrupted", tmp_path))  # its config has no sample_* options
    assert rep.samples is not None and rep.samples.images == []
    assert rep.samples.status == (
        "no sample images: sampling was off (set sample_every_n_epochs and sample_prompts to get some)"
    )
    text = format_report(rep)
    assert "samples: no sample images: sampling was off" in text.replace("\n  ", " ")
    run = tmp_path / "interrupted"
    cfg = run / "config.toml"
    cfg.write_text(cfg.read_text() + '\n[sample]\nsample_every_n_epochs = 1\nsample_prompts = "p.txt"\n')
    (run / "model" / "sample").mkdir()
    for e in (1, 2, 3):
        (run / "model" / "sample" / f"testchar-1-A_e{e:06d}_00_2026112523420{e}_42.png").write_bytes(_png((8, 8)))
    rep = report_run(run)
    assert rep.samples is not None
    assert rep.samples.status == "3 sample images: 1 prompt, 3 epochs; epoch 4 did not finish, so it has no samples"


def test_before_training_step_samples_other_runs_and_duplicates(run: Path) -> None:
    sample = run / "model" / "sample"
    (sample / "testchar-1-A_e000000_00_20261125233900_42.png").write_bytes(_png((8, 8)))
    (sample / "testchar-1-A_000030_00_20261125234100_42.png").write_bytes(_png((8, 8)))
    (sample / "otherrun_e000002_00_20261125234204_42.png").write_bytes(_png((8, 8)))
    (sample / "testchar-1-A_e000002_00_20261101000000_42.png").write_bytes(_png((8, 8)))  # an older training
    (sample / "notes.txt").write_text("not a sample")
    os.mkfifo(sample / "testchar-1-A_e000003_00_20261125234204_42.png")  # never opened
    rep = report_run(run)
    sset = rep.samples
    assert sset is not None
    assert [s.file for s in sset.before_training] == ["testchar-1-A_e000000_00_20261125233900_42.png"]
    assert [(s.step, s.label) for s in sset.steps] == [(30, "step 30")]
    assert [s.file for s in rep.ranking.rows[1].samples] == [E2]  # the newest of epoch 2, prompt 0
    assert f"{sample}: samples of other runs (otherrun) are not shown" in rep.warnings
    assert f"{sample}: 1 older sample of the same epoch and prompt (from an earlier training) not shown" in rep.warnings
    text = format_report(rep)
    assert "  before training       0  testchar-1-A_e000000_00_20261125233900_42.png" in text
    assert "  step 30               0  testchar-1-A_000030_00_20261125234100_42.png" in text


def test_scan_without_an_output_name(tmp_path: Path) -> None:
    (tmp_path / "e000001_00_20261125234204.png").write_bytes(b"x")
    (tmp_path / "a_e000001_00_20261125234204.png").write_bytes(b"x")
    sset = scan_samples(tmp_path, None, SampleSettings())
    assert sorted(s.file for s in sset.images) == ["a_e000001_00_20261125234204.png", "e000001_00_20261125234204.png"]
    assert sset.prompt_indexes == [0]
    assert sset.warnings == [
        f"{tmp_path}: samples of several runs ((no output name), a); give the output name to choose"
    ]


def test_prompt_files_in_every_format_sd_scripts_reads(tmp_path: Path) -> None:
    """The prompt texts under the grid's columns come from the run's prompt file: .txt, .json or .toml."""
    run = tmp_path / "run"
    run.mkdir()
    for suffix, text in (
        (".txt", "# a comment\n\nfirst --d 1\nsecond --n ugly\n"),
        (".json", json.dumps(["first --d 1", {"prompt": "second", "negative_prompt": "ugly", "width": 64}])),
        (
            ".toml",
            '[prompt]\nsample_steps = 4\n[[prompt.subset]]\nprompt = "first"\nseed = 1\n'
            '[[prompt.subset]]\nprompt = "second"\nnegative_prompt = "ugly"\nwidth = 64\n',
        ),
    ):
        (run / f"p{suffix}").write_text(text)
        (run / "config.toml").write_text(f'sample_prompts = "p{suffix}"\nsample_every_n_epochs = 1\n')
        src = locate_run(run)
        assert [p.prompt for p in src.prompts] == ["first", "second"], suffix
        assert src.prompts[1].negative == "ugly" and src.prompts[0].seed == 1, suffix
        assert src.sampling == SampleSettings(every_n_epochs=1, known=True)
    (run / "p.json").write_text("[[[")
    (run / "config.toml").write_text('sample_prompts = "p.json"\n')
    src = locate_run(run)
    assert src.prompts == [] and "p.json: invalid JSON" in src.warnings[0]


# --- the HTML grid ------------------------------------------------------------------------------------------------


def _srcs(html: str) -> list[str]:
    return re.findall(r'<img class="thumb" src="([^"]+)"', html)


def test_html_grid_of_epochs_by_prompts(run: Path, tmp_path: Path) -> None:
    html = render_html(report_run(run), plots=False, html_path=tmp_path / "out" / "r.html")
    grid = html[html.index('<table class="grid">') : html.index("</table>", html.index('<table class="grid">'))]
    assert grid.count("<tr class=") == 4  # epochs 1-4
    assert "<th>prompt 0</th>" in grid
    assert '<td class="prompt">1girl, testchar, braided hair, photo, realistic, 8K, HDR</td>' in grid  # under it
    assert grid.count("not sampled (sample_every_n_epochs = 2)") == 2
    assert '<tr class="mark-best ">' in grid and '<tr class="mark-final ">' in grid
    assert '<span class="badge best">best</span>' in grid and '<span class="badge final">final</span>' in grid
    assert "<td>1.039369</td><td>1</td>" in grid  # epoch 1's loss and rank next to its samples
    srcs = _srcs(html)
    raw = (run / "model" / "sample" / E2).read_bytes()
    assert srcs[0] == "data:image/png;base64," + base64.b64encode(raw).decode()  # 64 px: embedded as it is
    rel = os.path.relpath(run / "model" / "sample" / E2, tmp_path / "out")
    assert f'<a href="{rel}"><img class="thumb"' in html  # click: the file itself, relative to the page


def test_html_thumbnails_are_reduced_and_full_size_embeds(run: Path) -> None:
    big = _png((768, 512))
    (run / "model" / "sample" / E2).write_bytes(big)
    rep = report_run(run)
    thumbs = render_html(rep, plots=False)
    src = _srcs(thumbs)[0]
    assert src.startswith("data:image/jpeg;base64,")
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
        assert im.size == (THUMB_SIZE, round(THUMB_SIZE * 512 / 768))
    assert len(src) < len(big)  # smaller than the original
    full = render_html(rep, plots=False, samples="full")
    assert "data:image/png;base64," + base64.b64encode(big).decode() in full  # the original, in a lightbox
    assert 'class="lightbox" id="s0-0-2"' in full and '<a href="#s0-0-2"><img class="thumb"' in full
    off = render_html(rep, plots=False, samples="off")
    assert _srcs(off) == [] and f">{E2}</a>" in off


def test_html_broken_sample_is_said(run: Path) -> None:
    (run / "model" / "sample" / E2).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    html = render_html(report_run(run), plots=False)
    assert f'<span class="warn">{E2}: cannot read:' in html
    assert len(_srcs(html)) == 1  # epoch 4's is still shown


def test_html_sweep_puts_runs_side_by_side(run: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(run, sweep / "lr-1e-4")
    shutil.copytree(run, sweep / "lr-2e-4")
    (sweep / "lr-2e-4" / "model" / "sample" / E4).unlink()
    from kohya_recipe.report.build import build_report

    html = render_html(build_report(sweep), plots=False)
    grid = html[html.index('<table class="grid sweep">') :]
    grid = grid[: grid.index("</table>")]
    assert '<th><a href="#run-0">lr-1e-4</a></th><th><a href="#run-1">lr-2e-4</a></th>' in grid
    rows = re.findall(r"<tr><th>(epoch \d)</th>(.*?)</tr>", grid)
    assert [label for label, _ in rows] == ["epoch 2", "epoch 4"]
    assert rows[0][1].count("<img") == 2  # epoch 2 of both runs, side by side
    assert rows[1][1].count("<img") == 1 and '<span class="dim">–</span>' in rows[1][1]  # lr-2e-4 lacks epoch 4


# --- in a real browser --------------------------------------------------------------------------------------------

needs_browser = pytest.mark.skipif(
    browser() is None, reason="no headless Chromium here: `apt-get install chromium` (Debian) to run this check"
)


@needs_browser
@pytest.mark.parametrize("mode", ["thumbs", "full"])
def test_every_image_loads_in_chromium(run: Path, tmp_path: Path, mode: str) -> None:
    page = tmp_path / "r.html"
    page.write_text(render_html(report_run(run, with_lr=True), samples=mode, html_path=page))
    total, loaded, bad = images_loaded_in_browser(page, tmp_path)
    assert bad == [] and loaded == total == {"thumbs": 2 + 3, "full": 2 * 2 + 3}[mode]


@needs_browser
def test_every_image_of_a_sweep_loads_in_chromium(run: Path, tmp_path: Path) -> None:
    from kohya_recipe.report.build import build_report

    for name in ("a", "b"):
        shutil.copytree(run, tmp_path / "sweep" / name)
    page = tmp_path / "s.html"
    page.write_text(render_html(build_report(tmp_path / "sweep", with_lr=True), html_path=page))
    total, loaded, bad = images_loaded_in_browser(page, tmp_path)
    # per run 2 samples + 3 plots; the sweep plot; the side-by-side grid shows the 4 samples again
    assert bad == [] and loaded == total == 2 * (2 + 3) + 1 + 4
