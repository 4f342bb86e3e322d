"""Caption commands under hostile conditions: names at the length limit, partial failures and their exit codes,
globs reaching outside --dir, special files, signals in the middle of an edit, and the temp files a killed edit
leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kohya_recipe.dataset.caption_edits import add_tags, init_captions, set_caption
from kohya_recipe.dataset.check import check_dataset
from kohya_recipe.dataset.leftovers import find_leftovers
from kohya_recipe.errors import DatasetError, ExitCode
from kohya_recipe.files import atomic_temp_target, atomic_write_bytes
from tests._cli_util import run_cli
from tests._dataset_util import dataset, finishes, image, snapshot

ROOT = Path(__file__).resolve().parent.parent
LONG = "a" * 251  # + ".png" = 255 bytes, the longest legal name; its ".caption" would be 259


def _long_named(folder: Path) -> Path:
    return image(folder / f"{LONG}.png", (32, 32))


# ----------------------------------------------------------------------------------------------------------
# Names at the length limit (issue 14 item 2)


def test_check_reports_an_image_whose_caption_name_cannot_exist(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    _long_named(folder)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[subject]\ntrigger = "Zed"\n[dataset]\ncaption_extension = ".caption"\n')
    result = check_dataset(tmp_path / "img", recipe=recipe)
    missing = next(f for f in result.findings if f.check == "captions" and "without a caption file" in f.message)
    assert missing.severity == "error"
    [item] = missing.items
    assert item.detail == (
        f"no caption can exist: the name {'a' * 24}....caption is 259 bytes, more than the file system allows (255); "
        "shorten the image's name"
    )
    code, out, err = run_cli("check", tmp_path / "img", "--recipe", recipe, "--table", "none")
    assert code == ExitCode.CHECK_FAILED and "no caption can exist" in out and err == ""


def test_caption_commands_report_a_caption_name_that_cannot_exist(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    img = _long_named(folder)
    before = snapshot(folder)
    code, out, err = run_cli("caption", "init", folder, "--base", "1girl, Zed", "--ext", ".caption")
    assert code == ExitCode.ERROR and "Traceback" not in out + err
    assert "failed" in out and "259 bytes, more than the file system allows (255); shorten the image's name" in out
    assert out.rstrip().endswith("1 failed: nothing was changed")
    code, out, _err = run_cli("caption", "add", "x", "--match", "*.png", "--dir", folder, "--ext", ".caption")
    assert code == ExitCode.ERROR and f"{LONG}.png can have no .caption caption: the name" in out
    code, out, _err = run_cli("caption", "set", img, "1girl, Zed", "--ext", ".caption")
    assert code == ExitCode.ERROR and "cannot write: the name" in out
    code, out, _err = run_cli("caption", "show", folder, "--ext", ".caption")
    assert code == 0 and "0 captions (.caption) for 1 images" in out
    assert snapshot(folder) == before


def test_a_caption_name_at_the_limit_is_written_through_a_shorter_temp_name(tmp_path: Path) -> None:
    # "<251 a>.txt" is legal (255 bytes); its temp file ".<name>.XXXXXXXX.tmp" would not be, so the temp name
    # carries only the start of the caption's name.
    folder = tmp_path / "imgs"
    _long_named(folder)
    report = init_captions(folder, "1girl, Zed")
    assert [c.action for c in report.changes] == ["created"] and report.exit_code == 0
    assert (folder / f"{LONG}.txt").read_text() == "1girl, Zed\n"
    assert sorted(p.name for p in folder.iterdir()) == [f"{LONG}.png", f"{LONG}.txt"]


# ----------------------------------------------------------------------------------------------------------
# Outcomes: nothing changed (1), some changed (5) (issue 14 item 7)


def test_exit_1_means_nothing_changed_and_exit_5_some_changed(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 2, caption="1girl, Zed")
    (folder / "img01.txt").write_bytes("café".encode("latin-1"))
    code, out, _err = run_cli("caption", "add", "smile", "--match", "*.txt", "--dir", folder)
    assert code == ExitCode.PARTIAL == 5
    assert out.splitlines()[-1] == "1 updated, 1 failed: some files were changed, others failed (exit 5)"
    assert (folder / "img00.txt").read_text() == "1girl, Zed, smile\n"
    code, out, _err = run_cli("caption", "add", "smile", "--match", "*.txt", "--dir", folder, "--json")
    data = json.loads(out)
    assert code == ExitCode.ERROR and data["outcome"] == "failed" and data["counts"]["unchanged"] == 1
    code, _out, err = run_cli("caption", "add", "grin", "--match", "*.txt", "--dir", folder, "--dry-run")
    assert code == ExitCode.ERROR and err.splitlines()[-1].endswith("1 failed: nothing was changed")
    code, out, _err = run_cli("caption", "add", "grin", "--match", "img00.txt", "--dir", folder, "--json")
    assert code == 0 and json.loads(out)["outcome"] == "done"


# ----------------------------------------------------------------------------------------------------------
# --match is confined to --dir (issue 14 item 7)


def test_match_outside_dir_is_refused_and_nothing_is_edited(tmp_path: Path) -> None:
    inside = tmp_path / "inside"
    outside = tmp_path / "x"
    dataset(inside, 1, caption="1girl")
    dataset(outside, 2, caption="1girl")
    (inside / "linked").symlink_to(outside, target_is_directory=True)
    before = snapshot(tmp_path)
    for pattern in ("../x/*.txt", str(outside / "*.txt"), "linked/*.txt", "../x/*.png"):
        # The first --match is fine: a later one reaching out stops the command before anything is written.
        args = ("caption", "add", "smile", "--match", "*.txt", "--match", pattern, "--dir", inside)
        code, out, err = run_cli(*args)
        assert code == ExitCode.ERROR and out == "", pattern
        assert err.startswith(f"Error: --match {pattern!r}: ") and "is outside --dir" in err, err
        assert "nothing was changed" in err and len(err.splitlines()) == 1
    assert snapshot(tmp_path) == before
    with pytest.raises(DatasetError, match="outside --dir"):
        add_tags(["smile"], match=["../x/img00.txt"], root=inside)
    # An absolute pattern inside --dir is inside.
    report = add_tags(["smile"], match=[str(inside / "*.txt")], root=inside)
    assert report.counts["updated"] == 1


def test_help_says_matches_are_confined() -> None:
    code, out, _err = run_cli("caption", "add", "--help")
    assert code == 0 and "confined to --dir" in out and "refused" in out


# ----------------------------------------------------------------------------------------------------------
# Special files (issue 14 item 1)

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


@needs_fifo
def test_check_rules_and_recipe_fifos_are_one_line_errors(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    dataset(folder, 1)
    os.mkfifo(tmp_path / "rules.toml")
    os.mkfifo(tmp_path / "recipe.toml")
    for option in ("--rules", "--recipe"):
        code, out, err = finishes(lambda o=option: run_cli("check", tmp_path / "img", o, tmp_path / f"{o[2:]}.toml"))
        assert code == ExitCode.ERROR and out == "", option
        assert (
            err
            == f"Error: {tmp_path / (option[2:] + '.toml')}: not a regular file (a FIFO): reading it would block or never end\n"
        )


def test_check_rules_that_is_a_device_is_a_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    dataset(folder, 1)
    (tmp_path / "rules.toml").symlink_to("/dev/zero")  # reading it never ends
    code, _out, err = finishes(lambda: run_cli("check", tmp_path / "img", "--rules", tmp_path / "rules.toml"))
    assert code == ExitCode.ERROR and err.endswith(
        "not a regular file (a device): reading it would block or never end\n"
    )


@needs_fifo
def test_caption_commands_refuse_fifo_captions(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 2, caption="1girl, Zed")
    (folder / "img01.txt").unlink()
    os.mkfifo(folder / "img01.txt")
    code, out, _err = finishes(lambda: run_cli("caption", "add", "smile", "--match", "*.txt", "--dir", folder))
    assert code == ExitCode.PARTIAL and "not a regular file (a FIFO)" in out and "left untouched" in out
    code, out, _err = finishes(lambda: run_cli("caption", "add", "smile", "--match", "img01.png", "--dir", folder))
    assert code == ExitCode.ERROR and "img01.png has no .txt caption" in out  # sd-scripts' isfile: no caption
    code, out, _err = finishes(lambda: run_cli("caption", "init", folder, "--base", "1girl", "--force"))
    assert code == ExitCode.PARTIAL and "not a regular file (a FIFO)" in out
    code, _out, err = finishes(lambda: run_cli("caption", "set", folder / "img01.txt", "1girl", "--force"))
    assert code == ExitCode.ERROR and err.endswith(
        "img01.txt: not a regular file (a FIFO): reading it would block or never end\n"
    )
    code, out, _err = finishes(lambda: run_cli("caption", "show", folder))
    assert code == 0 and "no caption: " in out  # sd-scripts' isfile: a FIFO is no caption
    assert (folder / "img01.txt").is_fifo()


def test_caption_that_is_a_device_is_never_read(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 1, caption=None)
    (folder / "img00.txt").symlink_to("/dev/zero")
    code, out, _err = finishes(lambda: run_cli("caption", "add", "x", "--match", "img00.txt", "--dir", folder))
    assert code == ExitCode.ERROR and "not a regular file (a device)" in out


@needs_fifo
def test_images_that_are_fifos_never_block(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    dataset(folder, 2)
    os.mkfifo(folder / "pipe.png")
    os.mkfifo(folder / "pipe2.jpg")
    result = finishes(lambda: check_dataset(tmp_path / "img", decode=True))
    errors = {i.path: i.detail for f in result.findings if f.check == "corrupt" for i in f.items}
    assert errors["10_Zed woman/pipe.png"].startswith("not a regular file (a FIFO)")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[subject]\ntrigger = "Zed"\n')
    code, out, _err = finishes(lambda: run_cli("plan", recipe, "--images", folder))
    assert (
        code == 0 and "2 images × 10 repeats" in out
    )  # sd-scripts' listing is of regular files: the FIFOs are skipped
    code, out, _err = finishes(lambda: run_cli("caption", "add", "x", "--match", "pipe.png", "--dir", folder))
    assert code == ExitCode.ERROR and "pipe.png has no .txt caption" in out


# ----------------------------------------------------------------------------------------------------------
# Leftover temp files (issue 14 item 6)


def test_temp_names_of_atomic_writes_are_recognised_exactly() -> None:
    assert atomic_temp_target(".img00.txt.abcd_123.tmp") == ("img00.txt", False)
    for name in (".img00.txt.tmp", ".img00.txt.ABCD1234.tmp", "img00.txt.abcd1234.tmp", ".img00.txt.abcd123.tmp"):
        assert atomic_temp_target(name) is None, name


def _plant(folder: Path) -> dict[str, bool]:
    """Files named like leftovers; True for the ones that are provably ours."""
    planted = {
        ".img00.txt.abcd1234.tmp": True,  # caption exists next to it
        ".img01.txt.x_9y8z7w.tmp": True,
        ".img00.txt.tmp": False,  # not mkstemp's pattern
        ".img00.txt.ABCD1234.tmp": False,  # mkstemp draws lower-case letters, digits and _
        ".nosuch.txt.abcd1234.tmp": False,  # no caption of that name
        ".img00.png.abcd1234.tmp": False,  # written for an image, not a caption: not a caption edit's
        "img00.txt.abcd1234.tmp": False,  # not hidden
    }
    for name in planted:
        (folder / name).write_bytes(b"half a caption")
    (folder / ".img01.txt.aaaa1111.tmp").symlink_to(folder / "img01.txt")  # a symlink: never ours
    planted[".img01.txt.aaaa1111.tmp"] = False
    (folder / ".img01.txt.bbbb2222.tmp").mkdir()
    planted[".img01.txt.bbbb2222.tmp"] = False
    return planted


def test_leftovers_are_reported_by_check_and_removed_by_the_next_edit_only(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    dataset(folder, 2, caption="1girl, Zed")
    planted = _plant(folder)
    ours = sorted(n for n, mine in planted.items() if mine)
    assert [p.name for p in find_leftovers(folder)] == ours
    before = snapshot(tmp_path)

    result = check_dataset(tmp_path / "img")
    [found] = [f for f in result.findings if "interrupted caption edit" in f.message]
    assert found.severity == "info" and [i.path for i in found.items] == [f"10_Zed woman/{n}" for n in ours]
    dry = add_tags(["smile"], match=["*.txt"], root=folder, dry_run=True)
    assert dry.removed == [] and snapshot(tmp_path) == before  # check and dry runs write nothing

    code, out, _err = run_cli("caption", "add", "smile", "--match", "*.png", "--dir", folder)
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("removed")] == [
        f"removed   {folder / n}: temp file left by an interrupted edit" for n in ours
    ]
    left = {p.name for p in folder.iterdir()}
    assert {n for n, mine in planted.items() if not mine} <= left and not set(ours) & left
    assert (folder / ".img00.txt.tmp").read_bytes() == b"half a caption"


def test_init_and_set_remove_leftovers_too(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 1, caption="1girl")
    leftover = folder / ".img00.txt.abcd1234.tmp"
    leftover.write_bytes(b"x")
    assert init_captions(folder, "1girl").removed == [leftover] and not leftover.exists()
    leftover.write_bytes(b"x")
    assert set_caption(folder / "img00.png", "1girl, Zed", force=True).removed == [leftover]
    assert not leftover.exists()


# ----------------------------------------------------------------------------------------------------------
# Signals in the middle of an edit (issue 14 item 6)

N_CAPTIONS = 3000


def _many_captions(folder: Path) -> None:
    folder.mkdir(parents=True)
    png = image(folder.parent / "one.png", (8, 8))
    for i in range(N_CAPTIONS):
        os.link(png, folder / f"{i:05d}.png")
        (folder / f"{i:05d}.txt").write_text("1girl, Zed\n")


def _changed(folder: Path) -> int:
    return sum(1 for i in range(0, N_CAPTIONS, 97) if (folder / f"{i:05d}.txt").read_bytes() != b"1girl, Zed\n")


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_stops_the_edit_between_files_and_leaves_no_temp_file(tmp_path: Path, signame: str) -> None:
    folder = tmp_path / "imgs"
    _many_captions(folder)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "kohya_recipe", "caption", "add", "smile", "--match", "*.txt", "--dir", str(folder)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + 60
    while _changed(folder) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(getattr(signal, signame))
    out, err = proc.communicate(timeout=60)
    contents = {p.read_bytes() for p in folder.glob("*.txt")}
    assert contents <= {b"1girl, Zed\n", b"1girl, Zed, smile\n"}  # every caption whole: old or new
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temp file left
    updated = sum(1 for p in folder.glob("*.txt") if p.read_bytes() == b"1girl, Zed, smile\n")
    # Signalled as soon as the first caption changed: 3,000 fsync'ed writes take far longer than that.
    assert proc.returncode == ExitCode.INTERRUPTED, (proc.returncode, out[-300:], err)
    assert 0 < updated < N_CAPTIONS
    last = out.splitlines()[-1]
    assert last == f"{updated} updated; interrupted by {signame}: {N_CAPTIONS - updated} files not looked at"
    assert err == ""


def test_a_write_in_progress_finishes_before_the_signal_is_honoured(tmp_path: Path, monkeypatch) -> None:
    # The signal arrives while a caption is being written (here: inside the fsync): the file is finished, the
    # edit stops before the next one, and the report says which signal stopped it.
    folder = tmp_path / "imgs"
    dataset(folder, 3, caption="1girl")
    real_fsync = os.fsync
    sent: list[bool] = []

    def fsync_and_signal(fd: int) -> None:
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_and_signal)
    report = add_tags(["smile"], match=["*.txt"], root=folder)
    assert report.outcome == "interrupted" and report.interrupted == "SIGTERM" and report.exit_code == 130
    assert [c.action for c in report.changes] == ["updated"] and report.not_reached == 2
    assert (folder / "img00.txt").read_text() == "1girl, smile\n"
    assert (folder / "img01.txt").read_text() == "1girl\n"
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the caller's handler is back


def test_atomic_write_still_cleans_up_on_an_exception(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_bytes(b"old\n")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
