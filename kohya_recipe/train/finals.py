"""Keep a finished run's final checkpoint before a resumed run overwrites it.

sd-scripts writes the last epoch only under the unnumbered name ``<output_name>.safetensors``
(``library/train_util.py`` ``get_last_ckpt_name``; epoch files ``<output_name>-<epoch:06d>`` exist only for the
epochs before the last). Raising ``max_train_epochs`` from 2 to 3 and resuming therefore overwrites the epoch-2
weights at the end of epoch 3: they were nowhere else. Before such a run the final file is copied to the name
sd-scripts would have given that epoch, ``<output_name>-000002.safetensors``, so the report finds it like any
other epoch. A copy, not a move: the final file stays where the user (and their UI) knows it until the trainer
replaces it, and a run that fails leaves both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.files import read_json, sha256_file
from kohya_recipe.train.launch import TrainerSetupError


@dataclass(frozen=True)
class KeptFinal:
    """The previous final file and the copy that keeps it (``copied`` is False when an identical copy existed)."""

    source: Path
    kept_as: Path
    epoch: int
    copied: bool

    def describe(self, root: Path) -> str:
        what = "kept" if self.copied else "already kept"
        return (
            f"{what} the previous final {_rel(self.source, root)} (epoch {self.epoch}) as {_rel(self.kept_as, root)}: "
            "the resumed run writes its own final file over it"
        )


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def final_epoch(final: Path, runs_dir: Path) -> int | None:
    """The epoch whose weights ``final`` holds: its ``ss_epoch`` metadata (sd-scripts writes it in every
    safetensors file), else the newest successful run record of this project that wrote it."""
    if final.suffix == ".safetensors":
        from kohya_recipe.report.safetensors_meta import read_metadata

        try:
            value = read_metadata(final).get("ss_epoch", "")
        except KohyaRecipeError:
            value = ""
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        records = sorted(runs_dir.glob("*.json"), reverse=True)
    except OSError:
        return None
    for path in records:
        try:
            data = read_json(path)
            epoch = data["progress"]["epoch"]
            if data.get("outcome") == "success" and data.get("final_checkpoint") and isinstance(epoch, int):
                return epoch if epoch > 0 else None
        except (KohyaRecipeError, KeyError, TypeError):
            continue
    return None


def _copy_without_overwriting(source: Path, target: Path) -> bool:
    """Copy ``source`` to ``target`` (data and times) through a temp file that is linked into place, so
    ``target`` is never overwritten nor left half-written. Returns False when ``target`` exists already."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copy2(source, tmp)
        try:
            os.link(tmp, target)  # fails if target exists: never replaces it
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links (FAT, some network mounts): exclusive create instead
            try:
                with tmp.open("rb") as src, target.open("xb") as out:
                    shutil.copyfileobj(src, out)
            except FileExistsError:
                return False
            shutil.copystat(tmp, target)
        return True
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def keep_previous_final(model_dir: Path, output_name: str, runs_dir: Path) -> KeptFinal | None:
    """Before a resumed run: copy ``<output_name>.<ext>`` to ``<output_name>-<epoch:06d>.<ext>``.

    Nothing to do when there is no final file. An existing file of that name is never replaced: if it holds
    the same bytes the final is kept already; otherwise nothing is launched (:class:`TrainerSetupError`), since
    the trainer would destroy the only copy of that epoch.
    """
    for ext in (".safetensors", ".ckpt", ".pt"):
        final = model_dir / f"{output_name}{ext}"
        if final.is_file():
            break
    else:
        return None
    epoch = final_epoch(final, runs_dir)
    if epoch is None:
        raise TrainerSetupError(
            "the resumed run would overwrite this final file, and its epoch is unknown (no ss_epoch metadata, no run "
            "record); copy it elsewhere first",
            source=str(final),
        )
    target = model_dir / f"{output_name}-{epoch:06d}{final.suffix}"
    try:
        copied = _copy_without_overwriting(final, target)
    except OSError as exc:
        raise TrainerSetupError(
            f"cannot keep the previous final file before resuming: {exc.strerror or exc}", source=str(target)
        ) from None
    if not copied and (not target.is_file() or sha256_file(target) != sha256_file(final)):
        raise TrainerSetupError(
            f"the resumed run would overwrite {final.name} (epoch {epoch}), and {target.name} exists with other "
            "weights; move one of them away first",
            source=str(model_dir),
        )
    return KeptFinal(final, target, epoch, copied)
