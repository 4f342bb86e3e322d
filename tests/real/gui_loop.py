"""Helpers for the acceptance tests against the real kohya_ss GUI and the real trainer (test_gui_real.py).

* :func:`effective` reads what sd-scripts trains from the GUI's output: its TOML with the command line after
  ``--config_file`` (the GUI's ``additional_parameters``) merged over it, since sd-scripts lets the command line
  win; values normalised (numbers as floats, ``key=value`` lists as dicts, sd-scripts' defaults dropped, the
  scheduler and learning rates relative-step Adafactor replaces, the training length as "N epochs"/"N steps").
* :func:`localize` points a config's machine-specific paths at this machine (folders into a work folder, missing
  files emptied), touching nothing that changes training.
* :class:`CachedGui` runs ``gui_check.py`` once per distinct input (config bytes, base bytes, flags) and keeps its
  outputs under a cache folder in the temp dir, so re-runs only ask the GUI about what changed.
* :func:`train_with_extra` runs the trainer harness with extra command-line arguments (``run_real_extra.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kohya_recipe.files import tomllib
from kohya_recipe.sdscripts.options import option_specs
from tests.real.conftest import Gui, Trainer

# The keys that decide what is trained (length, batch, learning rates, optimizer and args, network,
# resolution/buckets, precision, model and script, loss/noise, data), by group.
RELEVANT: dict[str, tuple[str, ...]] = {
    "length": ("_length",),
    "batch": ("train_batch_size", "gradient_accumulation_steps"),
    "learning rates": (
        "learning_rate",
        "unet_lr",
        "text_encoder_lr",
        "lr_scheduler",
        "lr_warmup_steps",
        "lr_scheduler_num_cycles",
        "lr_scheduler_power",
        "lr_scheduler_args",
        "lr_scheduler_type",
    ),
    "optimizer": ("optimizer_type", "optimizer_args", "max_grad_norm"),
    "network": (
        "network_module",
        "network_dim",
        "network_alpha",
        "network_args",
        "network_dropout",
        "network_train_unet_only",
        "network_train_text_encoder_only",
        "network_weights",
        "dim_from_weights",
        "scale_weight_norms",
    ),
    "resolution": (
        "resolution",
        "enable_bucket",
        "min_bucket_reso",
        "max_bucket_reso",
        "bucket_reso_steps",
        "bucket_no_upscale",
    ),
    "precision": ("mixed_precision", "save_precision", "full_fp16", "full_bf16", "fp8_base", "no_half_vae"),
    "model": ("pretrained_model_name_or_path", "v2", "v_parameterization", "clip_skip", "vae", "_script"),
    "loss and noise": (
        "min_snr_gamma",
        "noise_offset",
        "adaptive_noise_scale",
        "multires_noise_iterations",
        "multires_noise_discount",
        "ip_noise_gamma",
        "loss_type",
        "huber_c",
        "huber_schedule",
        "huber_scale",
        "prior_loss_weight",
        "debiased_estimation_loss",
        "v_pred_like_loss",
        "scale_v_pred_loss_like_noise_pred",
        "min_timestep",
        "max_timestep",
        "masked_loss",
    ),
    "data": (
        "train_data_dir",
        "reg_data_dir",
        "dataset_config",
        "caption_extension",
        "shuffle_caption",
        "keep_tokens",
        "caption_dropout_rate",
        "caption_dropout_every_n_epochs",
        "color_aug",
        "flip_aug",
        "random_crop",
        "max_token_length",
        "seed",
    ),
}
RELEVANT_KEYS = tuple(k for keys in RELEVANT.values() for k in keys)
LIST_OPTIONS = ("network_args", "optimizer_args", "lr_scheduler_args")
TRAINER_DEFAULT_STEPS = 1600  # sd-scripts' --max_train_steps default
SCRIPTS = re.compile(r"\b(\w*train_network\.py)\b")


def _scalar(x: Any) -> Any:
    if isinstance(x, bool):
        return x
    if isinstance(x, int | float):
        return float(x)
    s = str(x).strip().strip('"')
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    try:
        return float(s)
    except ValueError:
        return s


def kv(items: Any) -> dict[str, Any]:
    """``["k=v", ...]`` (a TOML list or command-line words) as an order-free dict of normalised values."""
    out: dict[str, Any] = {}
    for item in items if isinstance(items, list) else [items]:
        key, _, value = str(item).partition("=")
        out[key.strip()] = _scalar(value)
    return out


def command_extra(command: str) -> list[str]:
    """The words after ``--config_file <file>`` of the GUI's printed command: its additional_parameters."""
    words = shlex.split(command)
    if "--config_file" not in words:
        return []
    return words[words.index("--config_file") + 2 :]


def cli_options(words: list[str]) -> dict[str, Any]:
    """``--opt v1 v2 --flag --k=v`` as argparse reads them: the value, a list for the list options, True for a flag."""
    found: dict[str, list[str]] = {}
    key = None
    for word in words:
        if word.startswith("--"):
            key, eq, value = word[2:].partition("=")
            found[key] = [value] if eq else []
        elif key is not None:
            found[key].append(word)
    out: dict[str, Any] = {}
    for key, values in found.items():
        if key in LIST_OPTIONS:
            out[key] = values
        else:
            out[key] = True if not values else values[0] if len(values) == 1 else values
    return out


def _relative_step_adafactor(values: dict[str, Any]) -> bool:
    if str(values.get("optimizer_type", "")).lower() != "adafactor":
        return False
    args = values.get("optimizer_args", {})
    return args.get("relative_step", True) is not False or args.get("warmup_init") is True


def effective(toml: dict[str, Any], extra: list[str], script: str | None) -> dict[str, Any]:
    """What sd-scripts trains with, from the GUI's TOML and the words after ``--config_file``."""
    merged: dict[str, Any] = dict(toml)
    merged.update(cli_options(extra))
    sdxl = script == "sdxl_train_network.py"
    specs = option_specs(sdxl)
    out: dict[str, Any] = {}
    for key, value in merged.items():
        if key in LIST_OPTIONS:
            out[key] = kv(value) if value else {}
        elif isinstance(value, list):
            out[key] = [_scalar(x) for x in value]
        elif key in ("train_data_dir", "reg_data_dir") and isinstance(value, str) and value:
            out[key] = os.path.normpath(value)
        else:
            out[key] = _scalar(value)
    epochs = out.get("max_train_epochs")
    if isinstance(epochs, float) and epochs > 0:
        out["_length"] = f"{int(epochs)} epochs"
    else:
        steps = out.get("max_train_steps")
        out["_length"] = f"{int(steps) if isinstance(steps, float) and steps > 0 else TRAINER_DEFAULT_STEPS} steps"
    out["_script"] = script
    if _relative_step_adafactor(out):
        # library/train_util.py: the adafactor schedule replaces any scheduler, and the learning rates are unused.
        out["lr_scheduler"] = "adafactor"
        for key in ("learning_rate", "unet_lr", "text_encoder_lr"):
            out.pop(key, None)
    if out.get("network_train_unet_only") is True:
        out.pop("text_encoder_lr", None)  # not trained
    for key in list(out):
        spec, value = specs.get(key), out[key]
        if spec is not None and spec.default is not None and value == _scalar(spec.default):
            del out[key]  # the same as leaving it out
        elif value is False or (isinstance(value, dict | list | str) and not value):
            del out[key]
    return out


def relevant(values: dict[str, Any]) -> dict[str, Any]:
    return {k: values[k] for k in RELEVANT_KEYS if k in values}


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The relevant keys whose values differ: key -> (a's, b's); ``None`` stands for "not set"."""
    ra, rb = relevant(a), relevant(b)
    return {k: (ra.get(k), rb.get(k)) for k in RELEVANT_KEYS if ra.get(k) != rb.get(k)}


# ----------------------------------------------------------------------------------------------------------------
# Configs of other machines, here


HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
FOLDER_KEYS = ("output_dir", "logging_dir")
OPTIONAL_PATHS = ("reg_data_dir", "network_weights", "lora_network_weights", "vae", "dataset_config", "resume")


def localize(config: dict[str, Any], *, gui_root: Path, data: Path, work: Path) -> tuple[dict[str, Any], list[str]]:
    """The config with this machine's paths: relative folders resolved in the GUI checkout (where the GUI runs),
    outputs into ``work``, other folders that do not exist here replaced by ``data``, missing optional files emptied,
    a missing local model replaced by its family's hub model. Returns the copy and the keys changed."""
    d = dict(config)
    changed: list[str] = []

    def here(value: Any) -> Path | None:
        if not isinstance(value, str) or not value or "\\" in value or re.match(r"^[A-Za-z]:", value):
            return None
        p = Path(value)
        return p if p.is_absolute() else gui_root / p

    train = here(d.get("train_data_dir"))
    if "train_data_dir" in d and (train is None or not train.is_dir()) and not d.get("dataset_config"):
        d["train_data_dir"] = str(data)
        changed.append("train_data_dir")
    elif train is not None and not Path(str(d["train_data_dir"])).is_absolute():
        d["train_data_dir"] = str(train)
    for key in FOLDER_KEYS:
        if key in d:
            d[key] = str(work / key)
            changed.append(key)
    for key in OPTIONAL_PATHS:
        p = here(d.get(key))
        if isinstance(d.get(key), str) and d[key] and (p is None or not p.exists()):
            d[key] = ""
            changed.append(key)
        elif p is not None:
            d[key] = str(p)
    model = d.get("pretrained_model_name_or_path")
    local_file = isinstance(model, str) and (model.endswith((".safetensors", ".ckpt")) or not HUB_ID.match(model))
    if isinstance(model, str) and model and local_file and not Path(model).exists():
        sdxl = d.get("sdxl") in (True, "true", "True")
        d["pretrained_model_name_or_path"] = (
            "stabilityai/stable-diffusion-xl-base-1.0" if sdxl else "runwayml/stable-diffusion-v1-5"
        )
        changed.append("pretrained_model_name_or_path")
    return d, changed


# ----------------------------------------------------------------------------------------------------------------
# The GUI, cached


@dataclass(frozen=True)
class GuiResult:
    exit: int
    line: str  # gui_check's one-line verdict (the GUI's reason when it refuses)
    toml: dict[str, Any]
    command: str
    toml_file: Path | None = None  # the GUI's TOML, as it wrote it

    @property
    def ok(self) -> bool:
        return self.exit == 0

    @property
    def reason(self) -> str:
        return re.sub(r"^gui_check: FAIL \(\w+\): ", "", self.line)

    @property
    def sentence(self) -> str:
        """The GUI's own sentence in :attr:`reason`, as an import quotes it (no field prefix, first line)."""
        return self.reason.split(" / ")[0].split(": ", 1)[-1]

    @property
    def extra(self) -> list[str]:
        return command_extra(self.command)

    @property
    def script(self) -> str | None:
        m = SCRIPTS.search(self.command)
        return m.group(1) if m else None

    def effective(self) -> dict[str, Any]:
        return effective(self.toml, self.extra, self.script)


def cache_root() -> Path:
    return Path(os.environ.get("KOHYA_RECIPE_REAL_CACHE", Path(tempfile.gettempdir()) / "kohya-recipe-real-cache"))


@dataclass(frozen=True)
class CachedGui:
    gui: Gui

    def _key(self, config: Path, flags: tuple[str, ...], base: Path | None) -> str:
        h = hashlib.sha256()
        h.update((self.gui.root / "gui_check.py").read_bytes())
        h.update(config.read_bytes())
        h.update(base.read_bytes() if base else b"")
        h.update(json.dumps(flags).encode())
        return h.hexdigest()[:24]

    def check(self, config: Path, out: Path, *flags: str, base: Path | None = None) -> GuiResult:
        """Load ``config`` into a fresh GUI form (after ``base``), print the training command; cached."""
        all_flags = (*flags, *(("--base", str(base)) if base else ()))
        cached = cache_root() / self._key(config, all_flags, base)
        if not (cached / "verdict.json").is_file():
            if out.exists():
                shutil.rmtree(out)
            done = self.gui.check(config, out, *all_flags)
            line = (done.stdout.strip().splitlines() or [done.stderr.strip()[-300:]])[-1]
            cached.mkdir(parents=True, exist_ok=True)
            for name in ("gui.toml", "gui_command.txt"):
                if (out / name).is_file():
                    shutil.copy(out / name, cached / name)
            (cached / "verdict.json").write_text(json.dumps({"exit": done.returncode, "line": line}), encoding="utf-8")
        verdict = json.loads((cached / "verdict.json").read_text(encoding="utf-8"))
        if verdict["exit"] != 0:
            return GuiResult(verdict["exit"], verdict["line"], {}, "")
        toml = tomllib.loads((cached / "gui.toml").read_text(encoding="utf-8"))
        command = (cached / "gui_command.txt").read_text(encoding="utf-8")
        return GuiResult(verdict["exit"], verdict["line"], toml, command, cached / "gui.toml")


# ----------------------------------------------------------------------------------------------------------------
# The trainer, with the GUI's additional_parameters

HERE = Path(__file__).parent
RUN_REAL_LOCK = "/tmp/run_real.lock"  # the lock run_real.sh takes: one real training at a time on this machine


def train_with_extra(
    trainer: Trainer, project: Path, config: Path, extra: list[str], *args: str, timeout: float = 3600
) -> subprocess.CompletedProcess[str]:
    """The trainer harness on ``config`` with ``extra`` appended to the trainer's command line, as the GUI does."""
    cmd = [str(trainer.python), str(HERE / "run_real_extra.py"), str(trainer.root), str(project), str(config)]
    return subprocess.run(
        ["flock", RUN_REAL_LOCK, *cmd, *args, "--", *extra], capture_output=True, text=True, timeout=timeout
    )
