# Written in sd-scripts' own os.path style, so printed paths (os.path.join) are byte-identical to the real ones.
# ruff: noqa: PTH103, PTH107, PTH110, PTH112, PTH113, PTH118, PTH119, PTH122, PTH123, PTH208
"""A stand-in for kohya-ss/sd-scripts' train_network.py (v0.10.1-5) that trains nothing but behaves like it.

It reproduces what a wrapper can observe, as recorded in the real runs (tests/data/trainer/): the argparse options
(library/train_options.json, 193 + SDXL extras: train_network.py setup_parser), `--config_file` flattening
(library/train_util.py read_config_from_file), `--dataset_config` validation with voluptuous' messages
(library/config_util.py ConfigSanitizer), folder mode `N_class tokens` (library/config_util.py
generate_dreambooth_subsets_config_by_subdirs), the stdout summary / `epoch e/E` / `saving checkpoint:` lines
(train_network.py NetworkTrainer.train) and the rich-formatted log records on stderr (library/utils.py setup_logging),
the tqdm `steps:` bar with `\\r` updates, checkpoint and state names (library/train_util.py get_epoch_ckpt_name,
EPOCH_STATE_NAME and their step/last variants), safetensors metadata keys (the `ss_*` metadata of
NetworkTrainer.train, library/sai_model_spec.py build_metadata), TensorBoard event files with the real tags
(NetworkTrainer.generate_step_logs), and the exit behaviour: 0 on success, **0 with `ERROR No data found`**, 1
with a traceback on a bad dataset config, death by SIGINT with a KeyboardInterrupt traceback on Ctrl-C.

What it does not reproduce: the math. Losses are seeded pseudo-random numbers, tensors are tiny (4 LoRA modules
with 8 input/output features and the real key names), images in `sample/` are 1x1 PNGs.

Test knobs (environment variables):
  FAKE_SD_SCRIPTS_STEP_SECONDS     sleep per optimizer step (default 0)
  FAKE_SD_SCRIPTS_STARTUP_SECONDS  sleep before loading the model (default 0; the real start-up is 10 s or more)
  FAKE_SD_SCRIPTS_SAMPLE_STEP_SECONDS  sleep per denoising step of a sample image (default 0)
  FAKE_SD_SCRIPTS_IGNORE_SIGNALS   "int" ignores SIGINT, "int,term" also SIGTERM (a hung trainer)
  FAKE_SD_SCRIPTS_JUNK             "binary": write 64 KiB of random bytes to stderr at start-up;
                                   "flood": write FAKE_SD_SCRIPTS_FLOOD_BYTES (default 8 MiB) without a newline
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import math
import os
import pickle
import random
import re
import shutil
import signal
import socket
import struct
import sys
import time
import unicodedata
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SD_SCRIPTS = HERE.parent
IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP"]


# ---------------------------------------------------------------------------------------------------------------
# rich-like logging on stderr (RichHandler: time column, level column, message, right-aligned source)


class Log:
    def __init__(self) -> None:
        try:
            self.width = max(int(os.environ.get("COLUMNS", "80")), 60)
        except ValueError:
            self.width = 80
        self.last_time = ""

    def __call__(self, level: str, message: str, source: str) -> None:
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        time_col = f"{now} " if now != self.last_time else " " * 20
        self.last_time = now
        # rich sizes the path column to the path: a 20-character source leaves 110 cells at 160 columns (the
        # wrapped records in fixtures `no-data` and `resume`)
        src_w = len(source)
        msg_w = self.width - 29 - 1 - src_w
        lines: list[str] = []
        for para in message.split("\n"):
            lines += _wrap_cells(para, msg_w)
        out = []
        for i, line in enumerate(lines):
            head = f"{time_col}{level:<8} " if i == 0 else " " * 29
            tail = source.rjust(src_w) if i == 0 else " " * src_w
            out.append(f"{head}{line}{' ' * (msg_w - _cells(line))} {tail}")
        sys.stderr.write("\n".join(out) + "\n")
        sys.stderr.flush()


def _cells(text: str) -> int:
    """Terminal cells, as rich counts them: East Asian wide/fullwidth characters take two (the Japanese halves
    of sd-scripts' messages; fixture `no-data` pads `正則化画像が…` to 160 cells, not 160 characters)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _wrap_cells(text: str, width: int) -> list[str]:
    """rich's word wrap by cells: words move to the next line whole; a word wider than the column (a run of
    Japanese without spaces) is folded at the cell boundary (fixture `no-data`, the `No data found` record)."""
    lines: list[str] = []
    line = ""
    for word in re.findall(r"\S+\s*|\s+", text):
        if _cells(line + word.rstrip()) <= width:
            line += word
            continue
        if line.strip():
            lines.append(line.rstrip())
            line = ""
        while _cells(word.rstrip()) > width:
            cut = 0
            while _cells(word[: cut + 1]) <= width:
                cut += 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    lines.append(line.rstrip())
    return lines


log = Log()


def info(message: str, source: str) -> None:
    log("INFO", message, source)


def warning(message: str, source: str) -> None:
    log("WARNING", message, source)


def error(message: str, source: str) -> None:
    log("ERROR", message, source)


# ---------------------------------------------------------------------------------------------------------------
# tqdm-like bar (format of tqdm 4.x as seen in the fixtures; mininterval 0.1 s for update(), set_postfix always
# refreshes)


def _fmt_interval(seconds: float) -> str:
    mins, s = divmod(int(seconds), 60)
    h, m = divmod(mins, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _fmt_num(n: float) -> str:
    f = f"{n:.3g}".replace("+0", "+").replace("-0", "-")
    s = str(n)
    return f if len(f) < len(s) else s


class Bar:
    def __init__(self, total: int, desc: str | None = None, initial: int = 0, position: int = 0) -> None:
        self.total, self.desc, self.n, self.position = total, desc, initial, position
        self.t0 = time.time()
        self.postfix = ""
        self.last_len = 0
        self.last_print = 0.0
        self.refresh()

    def line(self) -> str:
        elapsed = time.time() - self.t0
        frac = self.n / self.total if self.total else 1.0
        full, part = divmod(int(frac * 10 * 8), 8)
        bar = "█" * full
        if full < 10:
            bar += " ▏▎▍▌▋▊▉"[part]
            bar = bar.ljust(10)
        if self.n and elapsed > 0:
            rate = self.n / elapsed
            rate_s = f"{1 / rate:5.2f}s/it" if rate < 1 else f"{rate:5.2f}it/s"
            remaining = _fmt_interval((self.total - self.n) / rate) if rate else "?"
        else:
            rate_s, remaining = "?it/s", "?"
        prefix = f"{self.desc}: " if self.desc else ""
        return (
            f"{prefix}{frac * 100:3.0f}%|{bar}| {self.n}/{self.total} "
            f"[{_fmt_interval(elapsed)}<{remaining}, {rate_s}{self.postfix}]"
        )

    def refresh(self) -> None:
        s = self.line()
        pad = " " * max(self.last_len - len(s), 0)
        self.last_len = len(s)
        if self.position:
            # a nested bar (sd-scripts' validation bar, position=1) moves down a line, draws, and moves back up
            # with ESC[A: fixture `validation` has "\n\repoch validation steps: ...\x1b[A"
            sys.stderr.write("\n" * self.position + "\r" + s + pad + "\x1b[A" * self.position)
        else:
            sys.stderr.write("\r" + s + pad)
        sys.stderr.flush()
        self.last_print = time.time()

    def update(self, k: int = 1) -> None:
        self.n += k
        if time.time() - self.last_print >= 0.1 or self.n >= self.total:
            self.refresh()

    def set_postfix(self, **kw: float) -> None:
        self.postfix = "".join(f", {k}={_fmt_num(v)}" for k, v in kw.items())
        self.refresh()

    def close(self) -> None:
        if getattr(self, "closed", False):
            return
        self.closed = True
        self.refresh()
        sys.stderr.write("\n")
        sys.stderr.flush()


# ---------------------------------------------------------------------------------------------------------------
# TensorBoard event file (TFRecord framing with masked CRC-32C; Event/Summary protobufs encoded by hand)


def _crc32c(data: bytes) -> int:
    try:
        import google_crc32c

        return int(google_crc32c.value(data))
    except ImportError:  # pure-Python fallback, so the fake runs anywhere
        crc = 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> bytes:
    crc = _crc32c(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(num: int, payload: bytes) -> bytes:
    return _varint((num << 3) | 2) + _varint(len(payload)) + payload


class EventWriter:
    """What torch.utils.tensorboard.SummaryWriter.add_scalar writes (accelerate's TensorBoardTracker)."""

    def __init__(self, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.0"
        self.fh = open(log_dir / name, "wb")  # noqa: SIM115 -- closed by close()
        self._write(
            struct.pack("<Bd", (1 << 3) | 1, time.time())
            + _field_bytes(3, b"brain.Event:2")
            + _field_bytes(10, _field_bytes(1, b"tensorboard.summary.writer.event_file_writer"))
        )

    def _write(self, event: bytes) -> None:
        header = struct.pack("<Q", len(event))
        self.fh.write(header + _masked(header) + event + _masked(event))
        self.fh.flush()

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            val = _field_bytes(1, tag.encode()) + struct.pack("<Bf", (2 << 3) | 5, float(value))
            event = (
                struct.pack("<Bd", (1 << 3) | 1, time.time())
                + _varint(2 << 3)
                + _varint(step)
                + _field_bytes(5, _field_bytes(1, val))
            )
            self._write(event)

    def close(self) -> None:
        self.fh.close()


# ---------------------------------------------------------------------------------------------------------------
# safetensors


LORA_MODULES = [
    "lora_te_text_model_encoder_layers_0_mlp_fc1",
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
    "lora_unet_down_blocks_0_attentions_0_proj_in",
    "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_out_0",
]
_DTYPES = {"F16": ("e", 2), "F32": ("f", 4), "BF16": ("e", 2)}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], list[float]]], meta: dict[str, str]) -> None:
    header: dict[str, object] = {}
    data = bytearray()
    for name in sorted(tensors):
        dtype, shape, values = tensors[name]
        fmt, _ = _DTYPES[dtype]
        raw = b"".join(struct.pack("<" + fmt, v) for v in values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta:
        meta = dict(meta)
        meta["sshs_model_hash"] = hashlib.sha256(bytes(data)).hexdigest()
        meta["sshs_legacy_hash"] = hashlib.sha256(bytes(data[:0x10000])).hexdigest()[:8]
        header = {"__metadata__": meta, **header}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # safetensors pads the header to 8 bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob + bytes(data))


def lora_tensors(args: argparse.Namespace, epoch: int, dtype: str) -> dict[str, tuple[str, list[int], list[float]]]:
    rank = args.network_dim or 4
    alpha = float(args.network_alpha) if args.network_alpha else float(rank)
    rng = random.Random((args.seed or 0) * 1000 + epoch)
    out: dict[str, tuple[str, list[int], list[float]]] = {}
    for module in LORA_MODULES:
        if module.startswith("lora_te") and args.network_train_unet_only:
            continue
        if module.startswith("lora_unet") and args.network_train_text_encoder_only:
            continue
        out[f"{module}.alpha"] = (dtype, [], [alpha])
        out[f"{module}.lora_down.weight"] = (dtype, [rank, 8], [rng.uniform(-0.1, 0.1) for _ in range(rank * 8)])
        out[f"{module}.lora_up.weight"] = (dtype, [8, rank], [rng.uniform(-0.01, 0.01) for _ in range(8 * rank)])
    return out


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\x80\x80\x80"))
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------------------------------------------------------
# argparse from the option spec, and --config_file (train_util.read_config_from_file)


def _int_or_float(value: str) -> int | float:
    if value.endswith("%"):
        return float(value[:-1]) / 100
    f = float(value)
    return int(f) if f >= 1 else f


_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "int_or_float": _int_or_float}


def setup_parser(sdxl: bool) -> argparse.ArgumentParser:
    spec = json.loads((HERE / "train_options.json").read_text(encoding="utf-8"))
    parser = argparse.ArgumentParser()
    options = spec["options"] + (spec["sdxl_extra_options"] if sdxl else [])
    for opt in options:
        kind = opt["type"]
        if kind == "bool_flag":
            parser.add_argument(opt["name"], action="store_true", help=opt["dest"])
        elif kind == "list":
            parser.add_argument(
                opt["name"], type=_TYPES[opt["item_type"]], nargs="*", default=opt["default"], help=opt["dest"]
            )
        else:
            parser.add_argument(
                opt["name"], type=_TYPES[kind], default=opt["default"], choices=opt["choices"], help=opt["dest"]
            )
    return parser


def read_config_from_file(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    if not args.config_file:
        return args
    config_path = args.config_file if args.config_file.endswith(".toml") else args.config_file + ".toml"
    if not os.path.exists(config_path):
        info(f"{config_path} not found.", "train_util.py:4736")
        sys.exit(1)
    info(f"Loading settings from {config_path}...", "train_util.py:4744")
    config_dict = _load_toml(config_path)
    # sd-scripts lifts every section's keys to the top level; unknown keys are kept silently (read_config_from_file)
    flat: dict[str, object] = {}
    for section, value in config_dict.items():
        if not isinstance(value, dict):
            flat[section] = value
            continue
        flat.update(value)
    args = parser.parse_args(namespace=argparse.Namespace(**flat))
    args.config_file = os.path.splitext(args.config_file)[0]
    return args


def _load_toml(path: str) -> dict:
    try:
        import toml  # the reader sd-scripts uses

        with open(path, encoding="utf-8") as fh:
            return toml.load(fh)
    except ImportError:
        import tomllib

        with open(path, "rb") as fh:
            return tomllib.load(fh)


# ---------------------------------------------------------------------------------------------------------------
# --dataset_config validation (library/config_util.py ConfigSanitizer with voluptuous, default PREVENT_EXTRA)


class MultipleInvalid(Exception):
    pass


MultipleInvalid.__module__ = "voluptuous.error"  # the traceback's last line reads like the real one

_SUBSET = {
    "image_dir": str,
    "is_reg": bool,
    "alpha_mask": bool,
    "caption_extension": str,
    "class_tokens": str,
    "cache_info": bool,
    "num_repeats": int,
    "shuffle_caption": bool,
    "keep_tokens": int,
    "keep_tokens_separator": str,
    "secondary_separator": str,
    "caption_separator": str,
    "enable_wildcard": bool,
    "caption_prefix": str,
    "caption_suffix": str,
    "color_aug": bool,
    "flip_aug": bool,
    "random_crop": bool,
    "face_crop_aug_range": list,
    "token_warmup_min": int,
    "token_warmup_step": (float, int),
    "custom_attributes": dict,
    "resize_interpolation": str,
    "caption_dropout_rate": (float, int),
    "caption_dropout_every_n_epochs": int,
    "caption_tag_dropout_rate": (float, int),
    "metadata_file": str,
}
_SUBSET_ONLY = {"image_dir", "is_reg", "alpha_mask", "metadata_file"}
_DATASET = {
    "batch_size": int,
    "resolution": (int, list),
    "enable_bucket": bool,
    "min_bucket_reso": int,
    "max_bucket_reso": int,
    "bucket_reso_steps": int,
    "bucket_no_upscale": bool,
    "network_multiplier": float,
    "validation_seed": int,
    "validation_split": float,
    "resize_interpolation": str,
    **{k: v for k, v in _SUBSET.items() if k not in _SUBSET_ONLY},
}
_TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool", list: "list", dict: "dict"}


def _check(table: dict, allowed: dict, path: str, errors: list[str]) -> None:
    for key, value in table.items():
        where = f"{path}['{key}']"
        if key not in allowed:
            errors.append(f"extra keys not allowed @ {where}")
            continue
        types = allowed[key] if isinstance(allowed[key], tuple) else (allowed[key],)
        ok = any(
            isinstance(value, t) and not (t is int and isinstance(value, bool) and bool not in types) for t in types
        )
        if not ok:
            errors.append(f"expected {_TYPE_NAMES[types[0]]} for dictionary value @ {where}")


def validate_user_config(config: dict) -> None:
    errors: list[str] = []
    for key in config:
        if key not in ("general", "datasets"):
            errors.append(f"extra keys not allowed @ data['{key}']")
    _check(config.get("general", {}), _DATASET, "data['general']", errors)
    for i, ds in enumerate(config.get("datasets", [])):
        subsets = ds.get("subsets", [])
        _check({k: v for k, v in ds.items() if k != "subsets"}, _DATASET, f"data['datasets'][{i}]", errors)
        for j, sub in enumerate(subsets):
            where = f"data['datasets'][{i}]['subsets'][{j}]"
            _check(sub, _SUBSET, where, errors)
            if "image_dir" not in sub and "metadata_file" not in sub:
                errors.append(f"required key not provided @ {where}['image_dir']")
    if errors:
        error("Invalid user config / ユーザ設定の形式が正しくないようです", "config_util.py:375")
        raise MultipleInvalid(errors[0])


# ---------------------------------------------------------------------------------------------------------------
# datasets


class Subset:
    def __init__(
        self,
        image_dir: str,
        num_repeats: int,
        class_tokens: str | None,
        is_reg: bool,
        caption_extension: str,
        flip_aug: bool,
        color_aug: bool,
        shuffle_caption: bool,
        keep_tokens: int,
    ) -> None:
        self.image_dir, self.num_repeats, self.class_tokens, self.is_reg = image_dir, num_repeats, class_tokens, is_reg
        self.caption_extension = caption_extension
        self.flip_aug, self.color_aug, self.shuffle_caption, self.keep_tokens = (
            flip_aug,
            color_aug,
            shuffle_caption,
            keep_tokens,
        )
        self.images: list[str] = []


def _list_images(folder: str) -> list[str]:
    return sorted(str(p) for p in Path(folder).iterdir() if p.is_file() and p.suffix in IMAGE_EXTENSIONS)


def _caption_ext(value: str | None) -> str:
    ext = value or ".caption"
    return ext if ext.startswith(".") else "." + ext


def folder_subsets(train_dir: str | None, args: argparse.Namespace, is_reg: bool) -> list[Subset]:
    subsets: list[Subset] = []
    if not train_dir or not os.path.isdir(train_dir):
        return subsets
    for entry in sorted(os.listdir(train_dir)):
        path = os.path.join(train_dir, entry)
        if not os.path.isdir(path):
            continue
        tokens = entry.split("_")
        try:
            repeats = int(tokens[0])
        except ValueError:
            warning(
                f"ignore directory without repeats / 繰り返し回数のないディレクトリを無視します: {entry}",
                "config_util.py:613",
            )
            continue
        if repeats < 1:
            continue
        subsets.append(
            Subset(
                path,
                repeats,
                "_".join(tokens[1:]),
                is_reg,
                _caption_ext(args.caption_extension),
                args.flip_aug,
                args.color_aug,
                args.shuffle_caption,
                args.keep_tokens,
            )
        )
    return subsets


def config_subsets(config: dict, args: argparse.Namespace) -> tuple[list[Subset], float, int | None, dict]:
    general = config.get("general", {})
    datasets = config.get("datasets", [])
    subsets: list[Subset] = []
    split, seed, ds_info = 0.0, None, {}
    for ds in datasets:
        merged = {**general, **{k: v for k, v in ds.items() if k != "subsets"}}
        split = float(merged.get("validation_split", args.validation_split or 0.0))
        seed = merged.get("validation_seed", args.validation_seed)
        ds_info = merged
        for sub in ds.get("subsets", []):
            m = {**merged, **sub}
            subsets.append(
                Subset(
                    m["image_dir"],
                    int(m.get("num_repeats", args.dataset_repeats or 1)),
                    m.get("class_tokens"),
                    bool(m.get("is_reg", False)),
                    _caption_ext(m.get("caption_extension", args.caption_extension)),
                    bool(m.get("flip_aug", args.flip_aug)),
                    bool(m.get("color_aug", args.color_aug)),
                    bool(m.get("shuffle_caption", args.shuffle_caption)),
                    int(m.get("keep_tokens", args.keep_tokens)),
                )
            )
    return subsets, split, seed, ds_info


def _tag_frequency(images: list[str], ext: str) -> dict[str, int]:
    freq: dict[str, int] = {}
    for img in images:
        cap = os.path.splitext(img)[0] + ext
        if os.path.isfile(cap):
            with open(cap, encoding="utf-8") as fh:
                first = fh.readline()
            for tag in first.split(","):
                tag = tag.strip().lower()
                if tag:
                    freq[tag] = freq.get(tag, 0) + 1
    return freq


# ---------------------------------------------------------------------------------------------------------------
# training


def _git_commit() -> str | None:
    head = SD_SCRIPTS / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
    except OSError:
        return None
    if ref.startswith("ref: "):
        try:
            return (SD_SCRIPTS / ".git" / ref[5:]).read_text().strip()
        except OSError:
            return None
    return ref


def sample_prompt(line: str, sampler: str | None) -> dict[str, Any]:
    """One prompt line's settings as train_util.sample_image_inference reads them: the text before the first
    " --", then --w/--h (rounded down to a multiple of 8, at least 64; default 512), --s (1..1000, default 30),
    --l (default 7.5), --d, --n and --ss, matched case-insensitively."""
    parts = line.split(" --")
    p: dict[str, Any] = {
        "prompt": parts[0],
        "negative_prompt": None,
        "height": 512,
        "width": 512,
        "sample_steps": 30,
        "scale": 7.5,
        "sample_sampler": sampler or "ddim",
        "seed": None,
    }
    for part in parts[1:]:
        key, _, value = part.partition(" ")
        key = key.lower()
        try:
            if key in ("w", "h"):
                size = int(value)
                p["width" if key == "w" else "height"] = max(64, size - size % 8)
            elif key == "s":
                p["sample_steps"] = min(max(int(value), 1), 1000)
            elif key == "l":
                p["scale"] = float(value)
            elif key == "d":
                p["seed"] = int(value)
            elif key == "n":
                p["negative_prompt"] = value
            elif key == "ss":
                p["sample_sampler"] = value
        except ValueError:
            continue
    return p


def _knobs() -> tuple[float, float]:
    def num(name: str) -> float:
        try:
            return float(os.environ.get(name, "0") or 0)
        except ValueError:
            return 0.0

    ignore = os.environ.get("FAKE_SD_SCRIPTS_IGNORE_SIGNALS", "")
    if "int" in ignore.split(","):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if "term" in ignore.split(","):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    junk = os.environ.get("FAKE_SD_SCRIPTS_JUNK", "")
    if junk == "binary":
        sys.stderr.buffer.write(random.Random(7).randbytes(64 * 1024))
        sys.stderr.flush()
    elif junk == "flood":
        total = int(os.environ.get("FAKE_SD_SCRIPTS_FLOOD_BYTES", str(8 * 1024 * 1024)))
        block = b"x" * 65536
        while total > 0:
            sys.stderr.buffer.write(block[: min(total, len(block))])
            total -= len(block)
        sys.stderr.flush()
    return num("FAKE_SD_SCRIPTS_STEP_SECONDS"), num("FAKE_SD_SCRIPTS_STARTUP_SECONDS")


def main(sdxl: bool = False) -> None:
    step_seconds, startup_seconds = _knobs()
    parser = setup_parser(sdxl)
    args = parser.parse_args()
    args = read_config_from_file(args, parser)
    train(args, sdxl, step_seconds, startup_seconds)


def train(args: argparse.Namespace, sdxl: bool, step_seconds: float, startup_seconds: float) -> None:
    session_id = random.randint(0, 2**32 - 1)
    training_started_at = time.time()
    info("Using SDXL tokenizers" if sdxl else "Using v1 tokenizer", "strategy_sd.py:26")

    # -- dataset (train_network.py:519-576) ---------------------------------------------------------------------
    ds_info: dict[str, Any] = {}
    split, val_seed = float(args.validation_split or 0.0), args.validation_seed
    dataset_config_mode = bool(args.dataset_config)
    if dataset_config_mode:
        info(f"Loading dataset config from {args.dataset_config}", "train_network.py:519")
        path = str(args.dataset_config)
        if not path.lower().endswith((".toml", ".json")):
            raise ValueError(f"not supported config file format / 対応していない設定ファイルの形式です: {path}")
        if path.lower().endswith(".json"):
            with open(path, encoding="utf-8") as fh:
                user_config = json.load(fh)
        else:
            user_config = _load_toml(path)
        validate_user_config(user_config)
        subsets, split, val_seed, ds_info = config_subsets(user_config, args)
    else:
        info("Using DreamBooth method.", "train_network.py:530")
        subsets = folder_subsets(args.train_data_dir, args, False) + folder_subsets(args.reg_data_dir, args, True)
    resolution = ds_info.get("resolution", args.resolution)
    batch_size = int(ds_info.get("batch_size", args.train_batch_size or 1))
    if resolution is None:
        raise AssertionError("resolution is required / resolution（解像度）指定は必須です")

    info("prepare images.", "train_util.py:2112")
    train_count = reg_count = val_count = 0
    for sub in subsets:
        if not os.path.isdir(sub.image_dir):
            warning(f"not directory: {sub.image_dir}", "train_util.py:2050")
            continue
        images = _list_images(sub.image_dir)
        if split > 0 and not sub.is_reg:
            rng = random.Random(val_seed)
            shuffled = images[:]
            rng.shuffle(shuffled)
            n_train = math.ceil(len(images) * (1 - split))
            val_count += len(images) - n_train
            images = sorted(shuffled[:n_train])
            info(f"Using validation seed: {val_seed}", "train_util.py:159")
        info(f"found directory {sub.image_dir} contains {len(images)} image files", "train_util.py:2059")
        sub.images = images
        if sub.is_reg:
            reg_count += len(images) * sub.num_repeats
        else:
            train_count += len(images) * sub.num_repeats
    info(f"{train_count} train images with repeats.", "train_util.py:2158")
    info(f"{reg_count} reg images with repeats.", "train_util.py:2162")
    if reg_count == 0:
        warning("no regularization images / 正則化画像が見つかりませんでした", "train_util.py:2167")
    info("[Dataset 0]", "config_util.py:580")
    info("[Prepare dataset 0]", "config_util.py:592")
    info("loading image sizes.", "train_util.py:992")
    info("make buckets", "train_util.py:1015")
    if train_count == 0:
        error(
            "No data found. Please verify arguments (train_data_dir must be the parent of folders with images) / "
            "画像がありません。引数指定を確認してください（train_data_dirには画像があるフォルダではなく、"
            "画像があるフォルダの親フォルダを指定する必要があります）",
            "train_network.py:576",
        )
        return  # sd-scripts returns from train(): exit code 0 (fixture `no-data`)

    # -- model ---------------------------------------------------------------------------------------------------
    info("preparing accelerator", "train_network.py:593")
    print("accelerator device: cpu", flush=True)
    info("loading model for process 0/1", "train_util.py:5574")
    if startup_seconds:
        time.sleep(startup_seconds)
    print(f"import network module: {args.network_module}", flush=True)
    rank = args.network_dim or 4
    info(f"create LoRA network. base dim (rank): {rank}, alpha: {args.network_alpha}", "lora.py:935")
    print("prepare optimizer, data loader etc.", flush=True)
    commit = _git_commit()
    if commit is None:
        sys.stderr.write("fatal: not a git repository (or any of the parent directories): .git\n")

    # -- steps (NetworkTrainer.train: max_train_epochs overrides max_train_steps) ------------------------------
    total_images = train_count + (train_count if reg_count else 0)  # reg repeats are balanced to the train count
    batches = math.ceil(total_images / batch_size)
    per_epoch = math.ceil(batches / (args.gradient_accumulation_steps or 1))
    if args.max_train_epochs:
        max_train_steps = args.max_train_epochs * per_epoch
        print(
            f"override steps. steps for {args.max_train_epochs} epochs is / 指定エポックまでのステップ数: "
            f"{max_train_steps}",
            flush=True,
        )
    else:
        max_train_steps = args.max_train_steps
    num_epochs = math.ceil(max_train_steps / per_epoch)

    # -- resume (library/train_util.py resume_from_local_or_hf_if_specified) ---------------------------------------
    steps_from_state = 0
    if args.resume:
        info(f"resume training from local state: {args.resume}", "train_util.py:4777")
        info(f"Loading states from {args.resume}", "accelerator.py:3390")
        if not os.path.isdir(args.resume):
            raise ValueError(f"Tried to find {args.resume} but folder does not exist")
        state_file = os.path.join(args.resume, "train_state.json")
        with open(state_file, encoding="utf-8") as fh:
            data = json.load(fh)
        info(f"load train state from {state_file}: {data}", "train_network.py:969")
        steps_from_state = int(data["current_step"])
    epoch_to_start = steps_from_state // per_epoch if steps_from_state else 0

    lines = [
        "running training / 学習開始",
        f"  num train images * repeats / 学習画像の数×繰り返し回数: {train_count}",
        f"  num validation images * repeats / 学習画像の数×繰り返し回数: {val_count}",
        f"  num reg images / 正則化画像の数: {reg_count}",
        f"  num batches per epoch / 1epochのバッチ数: {batches}",
        f"  num epochs / epoch数: {num_epochs}",
        f"  batch size per device / バッチサイズ: {batch_size}",
        f"  gradient accumulation steps / 勾配を合計するステップ数 = {args.gradient_accumulation_steps}",
        f"  total optimization steps / 学習ステップ数: {max_train_steps}",
    ]
    print("\n".join(lines), flush=True)

    writer = None
    if args.logging_dir or args.log_with:
        if args.log_with in ("tensorboard", "all") and not args.logging_dir:
            raise ValueError(
                "logging_dir is required when log_with is tensorboard / Tensorboardを使う場合、logging_dirを指定してください"
            )
        stamp = time.strftime("%Y%m%d%H%M%S")
        run_dir = (
            Path(args.logging_dir) / f"{args.log_prefix or ''}{stamp}" / (args.log_tracker_name or "network_train")
        )
        writer = EventWriter(run_dir)

    save_dtype = {"fp16": "F16", "bf16": "BF16"}.get(args.save_precision or "", "F32")
    name = args.output_name
    ext = "." + (args.save_model_as or "safetensors")
    rng = random.Random(args.seed if args.seed is not None else 0)
    recent: list[float] = []
    tag_freq = {
        os.path.basename(s.image_dir): _tag_frequency(s.images, s.caption_extension) for s in subsets if not s.is_reg
    }
    dirs = {
        os.path.basename(s.image_dir): {"n_repeats": s.num_repeats, "img_count": len(s.images)}
        for s in subsets
        if not s.is_reg
    }
    reg_dirs = {
        os.path.basename(s.image_dir): {"n_repeats": s.num_repeats, "img_count": len(s.images)}
        for s in subsets
        if s.is_reg
    }

    def metadata(epoch: int, step: int) -> dict[str, str]:
        return _metadata(
            args,
            sdxl,
            session_id,
            training_started_at,
            train_count,
            val_count,
            reg_count,
            batches,
            num_epochs,
            max_train_steps,
            resolution,
            batch_size,
            subsets,
            tag_freq,
            dirs,
            reg_dirs,
            dataset_config_mode,
            ds_info,
            commit,
            epoch,
            step,
        )

    def save_model(ckpt_name: str, step: int, epoch: int) -> None:
        if args.output_dir is None:
            raise TypeError("expected str, bytes or os.PathLike object, not NoneType")
        os.makedirs(args.output_dir, exist_ok=True)
        ckpt_file = os.path.join(args.output_dir, ckpt_name)
        print(f"\nsaving checkpoint: {ckpt_file}", flush=True)
        if commit is None:
            warning("Failed to get git commit hash, using fallback", "sai_model_spec.py:288")
        meta = {} if args.no_metadata else metadata(epoch, step)
        write_safetensors(Path(ckpt_file), lora_tensors(args, epoch, save_dtype), meta)

    def save_state(state_name: str, epoch: int, step: int, message: str, line: int = 5941) -> None:
        # train_util.save_and_remove_state_on_epoch_end logs from lines 5941/5942, save_state_on_train_end from
        # 5989/5990 (fixture `validation`)
        state_dir = os.path.join(args.output_dir, state_name)
        info("", f"train_util.py:{line}")
        info(message, f"train_util.py:{line + 1}")
        info(f"Saving current state to {state_dir}", "accelerator.py:3241")
        os.makedirs(state_dir, exist_ok=True)
        info(f"save train state to {state_dir}/train_state.json at epoch {epoch} step {step}", "train_network.py:946")
        with open(os.path.join(state_dir, "train_state.json"), "w", encoding="utf-8") as fh:
            json.dump({"current_epoch": epoch, "current_step": step}, fh)
        write_safetensors(Path(state_dir) / "model.safetensors", lora_tensors(args, epoch, "F32"), {"format": "pt"})
        info(f"Model weights saved in {state_dir}/model.safetensors", "checkpointing.py:108")
        for fname, what, line in (("optimizer.bin", "Optimizer state", 115), ("scheduler.bin", "Scheduler state", 122)):
            with open(os.path.join(state_dir, fname), "wb") as fh:
                pickle.dump({"step": step}, fh)
            info(f"{what} saved in {state_dir}/{fname}", f"checkpointing.py:{line}")
        with open(os.path.join(state_dir, "random_states_0.pkl"), "wb") as fh:
            pickle.dump({"random_state": rng.getstate()}, fh)
        info(f"Random states saved in {state_dir}/random_states_0.pkl", "checkpointing.py:170")

    def remove_old(epoch_no: int) -> None:
        if args.save_last_n_epochs is not None:
            old = epoch_no - args.save_every_n_epochs * args.save_last_n_epochs
            if old >= 1:
                old_file = os.path.join(args.output_dir, f"{name}-{old:06d}{ext}")
                if os.path.exists(old_file):
                    print(f"removing old checkpoint: {old_file}", flush=True)
                    os.remove(old_file)
        keep_states = args.save_last_n_epochs_state or args.save_last_n_epochs
        if args.save_state and keep_states is not None:
            old = epoch_no - args.save_every_n_epochs * keep_states
            old_dir = os.path.join(args.output_dir, f"{name}-{old:06d}-state")
            if old >= 1 and os.path.exists(old_dir):
                info(f"removing old state: {old_dir}", "train_util.py:5955")
                shutil.rmtree(old_dir)

    def sample(epoch: int) -> None:
        if not args.sample_prompts:
            return
        if not os.path.isfile(args.sample_prompts):
            error(f"No prompt file / プロンプトファイルがありません: {args.sample_prompts}", "train_util.py:6400")
            return
        info("", "train_util.py:6393")
        info(f"generating sample images at step / サンプル画像生成 ステップ: {global_step}", "train_util.py:6394")
        with open(args.sample_prompts, encoding="utf-8") as fh:
            prompts = [p.strip() for p in fh if p.strip() and not p.startswith("#")]
        stamp = time.strftime("%Y%m%d%H%M%S")
        try:
            sample_seconds = float(os.environ.get("FAKE_SD_SCRIPTS_SAMPLE_STEP_SECONDS", "0") or 0)
        except ValueError:
            sample_seconds = 0.0
        for idx, line in enumerate(prompts):
            p = sample_prompt(line, args.sample_sampler)
            # train_util.sample_image_inference logs the prompt's settings, then diffusers' pipeline runs its
            # denoising loop under an unlabelled tqdm bar nested below the main one (position 1), closed at the
            # end as a plain line (fixture `article-mini`)
            for key, where in (
                ("prompt", 6542),
                ("negative_prompt", 6543),
                ("height", 6544),
                ("width", 6545),
                ("sample_steps", 6546),
                ("scale", 6547),
                ("sample_sampler", 6548),
                ("seed", 6550),
            ):
                if key != "seed" or p["seed"] is not None:
                    info(f"{key}: {p[key]}", f"train_util.py:{where}")
            denoise = Bar(p["sample_steps"], position=1)
            for _ in range(p["sample_steps"]):
                if sample_seconds:
                    time.sleep(sample_seconds)
                denoise.update(1)
            denoise.position = 0
            denoise.close()
            fname = (
                f"{name}_e{epoch:06d}_{idx:02d}_{stamp}" + (f"_{p['seed']}" if p["seed"] is not None else "") + ".png"
            )
            out = Path(args.output_dir) / "sample" / fname
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(_png_1x1())

    bar = Bar(max_train_steps, "steps")
    # tqdm closes an open bar when the interpreter exits, after a KeyboardInterrupt traceback was printed: the
    # last line of fixture `interrupted`'s stderr is "\rsteps:  18%|...| 43/240 [...]\n"
    atexit.register(bar.close)
    val: Bar | None = None
    global_step = 0
    loss_total = 0.0
    for epoch in range(epoch_to_start, num_epochs):
        print(f"\nepoch {epoch + 1}/{num_epochs}\n", flush=True)
        for _ in range(2):  # sd-scripts logs this twice (dataset and validation dataset)
            info(f"epoch is incremented. current_epoch: 0, epoch: {epoch + 1}", "train_util.py:784")
        epoch_losses: list[float] = []
        for _ in range(per_epoch):
            if step_seconds:
                time.sleep(step_seconds)
            loss = 1.0 + rng.uniform(-0.15, 0.15)
            global_step += 1
            bar.update(1)
            epoch_losses.append(loss)
            recent.append(loss)
            if len(recent) > per_epoch:
                recent.pop(0)
            avr_loss = sum(recent) / len(recent)
            loss_total += loss
            if writer is not None:
                lr = 1e-4 * min(1.0, global_step / 10)
                logs = {"loss/current": loss, "loss/average": avr_loss}
                if args.network_train_unet_only:
                    logs.update({"lr/unet": lr, "lr/group0": lr})
                else:
                    logs.update({"lr/textencoder": lr, "lr/unet": lr, "lr/group1": lr})
                writer.scalars(logs, global_step)
            bar.set_postfix(avr_loss=avr_loss)
            if args.save_every_n_steps and global_step % args.save_every_n_steps == 0:
                save_model(f"{name}-step{global_step:08d}{ext}", global_step, epoch)
                if args.save_state:
                    save_state(
                        f"{name}-step{global_step:08d}-state", epoch, global_step, f"saving state at step {global_step}"
                    )
            if global_step >= max_train_steps:
                break
        epoch_avg = sum(epoch_losses) / len(epoch_losses)
        if writer is not None:
            if val_count:
                val = Bar(val_count * 4, "epoch validation steps", position=1)
                val_loss = 1.05 + rng.uniform(-0.02, 0.02)
                for k in range(val_count * 4):
                    val.update(1)
                    val.set_postfix(val_epoch_avg_loss=val_loss, timestep=(200, 400, 600, 800)[k % 4])
                writer.scalars(
                    {
                        "loss/validation/epoch_average": val_loss,
                        "loss/validation/epoch_divergence": val_loss - avr_loss,
                    },
                    epoch + 1,
                )
            writer.scalars({"loss/epoch_average": epoch_avg}, epoch + 1)
        if args.save_every_n_epochs and (epoch + 1) % args.save_every_n_epochs == 0 and epoch + 1 < num_epochs:
            save_model(f"{name}-{epoch + 1:06d}{ext}", global_step, epoch + 1)
            remove_old(epoch + 1)
            if args.save_state:
                save_state(
                    f"{name}-{epoch + 1:06d}-state", epoch + 1, global_step, f"saving state at epoch {epoch + 1}"
                )
        if args.sample_every_n_epochs and (epoch + 1) % args.sample_every_n_epochs == 0:
            sample(epoch + 1)
        if global_step >= max_train_steps:
            break

    if args.save_state or args.save_state_on_train_end:
        save_state(f"{name}-state", num_epochs, global_step, "saving last state.", line=5989)
    save_model(f"{name}{ext}", global_step, num_epochs)
    info("model saved.", "train_network.py:1729")
    if writer is not None:
        writer.close()
    bar.close()
    if val is not None:
        # sd-scripts never closes the validation bar; tqdm closes it at interpreter exit, below the main bar, as a
        # plain "\r...\n" line (the last line of fixture `validation`'s stderr)
        val.position = 0
        val.close()


def _metadata(
    args,
    sdxl,
    session_id,
    started,
    train_count,
    val_count,
    reg_count,
    batches,
    num_epochs,
    max_train_steps,
    resolution,
    batch_size,
    subsets,
    tag_freq,
    dirs,
    reg_dirs,
    dataset_config_mode,
    ds_info,
    commit,
    epoch,
    step,
) -> dict[str, str]:
    """The ss_* / modelspec.* keys sd-scripts writes (NetworkTrainer.train, sai_model_spec.build_metadata); values
    are strings."""
    model = str(args.pretrained_model_name_or_path or "")
    opt_args = ",".join(args.optimizer_args or [])
    optimizer = args.optimizer_type or "AdamW"
    opt_class = (
        "transformers.optimization.Adafactor" if optimizer.lower() == "adafactor" else f"torch.optim.{optimizer}"
    )
    if isinstance(resolution, str):
        res = tuple(int(x) for x in resolution.split(","))
        res = res if len(res) == 2 else (res[0], res[0])
    elif isinstance(resolution, list):
        res = (resolution[0], resolution[1])
    else:
        res = (int(resolution), int(resolution))
    meta = {
        "ss_session_id": str(session_id),
        "ss_training_started_at": str(started),
        "ss_output_name": str(args.output_name),
        "ss_learning_rate": str(None if optimizer.lower() == "adafactor" else args.learning_rate),
        "ss_text_encoder_lr": str(args.text_encoder_lr[0] if args.text_encoder_lr else None)
        if isinstance(args.text_encoder_lr, list)
        else str(args.text_encoder_lr),
        "ss_unet_lr": str(args.unet_lr),
        "ss_num_train_images": str(train_count),
        "ss_num_validation_images": str(val_count),
        "ss_num_reg_images": str(reg_count),
        "ss_num_batches_per_epoch": str(batches),
        "ss_num_epochs": str(num_epochs),
        "ss_gradient_checkpointing": str(args.gradient_checkpointing),
        "ss_gradient_accumulation_steps": str(args.gradient_accumulation_steps),
        "ss_max_train_steps": str(max_train_steps),
        "ss_lr_warmup_steps": str(args.lr_warmup_steps),
        "ss_lr_scheduler": "adafactor:2e-06" if optimizer.lower() == "adafactor" else str(args.lr_scheduler),
        "ss_network_module": str(args.network_module),
        "ss_network_dim": str(args.network_dim),
        "ss_network_alpha": str(args.network_alpha),
        "ss_network_dropout": str(args.network_dropout),
        "ss_mixed_precision": str(args.mixed_precision),
        "ss_full_fp16": str(args.full_fp16),
        "ss_v2": str(args.v2),
        "ss_base_model_version": "sdxl_base_v1-0" if sdxl else ("sd_v2" if args.v2 else "sd_v1"),
        "ss_clip_skip": str(args.clip_skip),
        "ss_max_token_length": str(args.max_token_length),
        "ss_cache_latents": str(args.cache_latents),
        "ss_seed": str(args.seed),
        "ss_lowram": str(args.lowram),
        "ss_noise_offset": str(args.noise_offset),
        "ss_multires_noise_iterations": str(args.multires_noise_iterations),
        "ss_multires_noise_discount": str(args.multires_noise_discount),
        "ss_adaptive_noise_scale": str(args.adaptive_noise_scale),
        "ss_zero_terminal_snr": str(args.zero_terminal_snr),
        "ss_training_comment": str(args.training_comment),
        "ss_sd_scripts_commit_hash": commit or "(unknown)",
        "ss_optimizer": f"{opt_class}({opt_args})" if opt_args else opt_class,
        "ss_max_grad_norm": str(args.max_grad_norm),
        "ss_caption_dropout_rate": str(args.caption_dropout_rate),
        "ss_caption_dropout_every_n_epochs": str(args.caption_dropout_every_n_epochs),
        "ss_caption_tag_dropout_rate": str(args.caption_tag_dropout_rate),
        "ss_face_crop_aug_range": str(args.face_crop_aug_range),
        "ss_prior_loss_weight": str(args.prior_loss_weight),
        "ss_min_snr_gamma": str(args.min_snr_gamma),
        "ss_scale_weight_norms": str(args.scale_weight_norms),
        "ss_ip_noise_gamma": str(args.ip_noise_gamma),
        "ss_debiased_estimation": str(args.debiased_estimation_loss),
        "ss_noise_offset_random_strength": str(args.noise_offset_random_strength),
        "ss_ip_noise_gamma_random_strength": str(args.ip_noise_gamma_random_strength),
        "ss_loss_type": str(args.loss_type),
        "ss_huber_schedule": str(args.huber_schedule),
        "ss_huber_scale": str(args.huber_scale),
        "ss_huber_c": str(args.huber_c),
        "ss_fp8_base": str(args.fp8_base),
        "ss_fp8_base_unet": str(args.fp8_base_unet),
        "ss_validation_seed": str(args.validation_seed),
        "ss_validation_split": str(args.validation_split),
        "ss_max_validation_steps": str(args.max_validation_steps),
        "ss_validate_every_n_epochs": str(args.validate_every_n_epochs),
        "ss_validate_every_n_steps": str(args.validate_every_n_steps),
        "ss_resize_interpolation": str(args.resize_interpolation),
        "ss_epoch": str(epoch),
        "ss_steps": str(step),
        "ss_training_finished_at": str(time.time()),
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora" if sdxl else "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": str(args.metadata_title or args.output_name),
        "modelspec.resolution": f"{res[0]}x{res[1]}" if args.resolution else ("1024x1024" if sdxl else "512x512"),
        "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "modelspec.prediction_type": "v" if args.v_parameterization else "epsilon",
        "modelspec.implementation_version": f"sd-scripts/{commit}" if commit else "sd-scripts/unknown",
    }
    if model:
        meta["ss_sd_model_name"] = os.path.basename(model.rstrip("/"))
        if os.path.isdir(model):
            meta["ss_sd_model_hash"] = meta["ss_new_sd_model_hash"] = "IsADirectory"
        elif os.path.isfile(model):
            with open(model, "rb") as fh:
                whole = fh.read()
            meta["ss_new_sd_model_hash"] = hashlib.sha256(whole).hexdigest()
            meta["ss_sd_model_hash"] = hashlib.sha256(whole[0x100000:0x110000]).hexdigest()[:8]
    if args.network_args:
        meta["ss_network_args"] = json.dumps({a.split("=", 1)[0]: a.split("=", 1)[1] for a in args.network_args})
    bucket_info = json.dumps(
        {"buckets": {"0": {"resolution": list(res), "count": train_count}}, "mean_img_ar_error": 0.0}
    )
    if dataset_config_mode:
        meta["ss_datasets"] = json.dumps(
            [
                {
                    "is_dreambooth": True,
                    "batch_size_per_device": batch_size,
                    "num_train_images": train_count,
                    "num_reg_images": reg_count,
                    "resolution": list(res),
                    "enable_bucket": bool(ds_info.get("enable_bucket", args.enable_bucket)),
                    "min_bucket_reso": ds_info.get("min_bucket_reso", args.min_bucket_reso),
                    "max_bucket_reso": ds_info.get("max_bucket_reso", args.max_bucket_reso),
                    "tag_frequency": tag_freq,
                    "bucket_info": json.loads(bucket_info),
                    "resize_interpolation": None,
                    "subsets": [
                        {
                            "img_count": len(s.images),
                            "num_repeats": s.num_repeats,
                            "color_aug": s.color_aug,
                            "flip_aug": s.flip_aug,
                            "random_crop": False,
                            "shuffle_caption": s.shuffle_caption,
                            "keep_tokens": s.keep_tokens,
                            "keep_tokens_separator": "",
                            "secondary_separator": None,
                            "enable_wildcard": False,
                            "caption_prefix": None,
                            "caption_suffix": None,
                            "resize_interpolation": None,
                            "image_dir": os.path.basename(s.image_dir),
                            "class_tokens": s.class_tokens,
                            "is_reg": s.is_reg,
                        }
                        for s in subsets
                    ],
                }
            ]
        )
    else:
        sub = subsets[0]
        meta.update(
            {
                "ss_batch_size_per_device": str(batch_size),
                "ss_total_batch_size": str(batch_size * (args.gradient_accumulation_steps or 1)),
                "ss_resolution": str(res),
                "ss_color_aug": str(sub.color_aug),
                "ss_flip_aug": str(sub.flip_aug),
                "ss_random_crop": str(args.random_crop),
                "ss_shuffle_caption": str(sub.shuffle_caption),
                "ss_enable_bucket": str(args.enable_bucket),
                "ss_bucket_no_upscale": str(args.bucket_no_upscale),
                "ss_min_bucket_reso": str(args.min_bucket_reso),
                "ss_max_bucket_reso": str(args.max_bucket_reso),
                "ss_keep_tokens": str(sub.keep_tokens),
                "ss_reg_dataset_dirs": json.dumps(reg_dirs),
                "ss_bucket_info": bucket_info,
            }
        )
    meta["ss_tag_frequency"] = json.dumps(tag_freq)
    meta["ss_dataset_dirs"] = json.dumps(dirs)
    return meta
