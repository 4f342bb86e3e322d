"""Read a safetensors file's header — metadata and tensor table — without loading a tensor (no torch).

The format: an 8-byte little-endian header length N, then N bytes of UTF-8 JSON ``{name: {dtype, shape,
data_offsets}, "__metadata__": {str: str}}``, then the tensor bytes. sd-scripts stores its training settings in
``__metadata__``, all values as strings, some of them JSON-encoded (train_network.py ``NetworkTrainer.train``
builds the dict, ``json.dumps`` the nested values and ends with ``{k: str(v) ...}``).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.files import MAX_NESTING, TooDeep, open_regular_file, parse_bounded

# The safetensors library refuses headers over 100 MB (safetensors/src/tensor.rs MAX_HEADER_SIZE).
MAX_HEADER_SIZE = 100_000_000

# Metadata values sd-scripts writes as JSON strings (train_network.py: json.dumps of dicts/lists).
JSON_KEYS = (
    "ss_tag_frequency",
    "ss_dataset_dirs",
    "ss_reg_dataset_dirs",
    "ss_datasets",
    "ss_bucket_info",
    "ss_network_args",
)


class SafetensorsError(KohyaRecipeError):
    """A file is not a safetensors file, or its header is damaged."""


@dataclass
class TensorInfo:
    dtype: str
    shape: list[int]
    data_offsets: tuple[int, int]


@dataclass
class SafetensorsHeader:
    path: Path
    file_size: int
    header_size: int
    metadata: dict[str, str]
    tensors: dict[str, TensorInfo]
    warnings: list[str] = field(default_factory=list)

    def meta_int(self, key: str) -> int | None:
        """An integer metadata value, or None when missing or not a number ("None", "")."""
        raw = self.metadata.get(key)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            try:
                f = float(raw)  # type: ignore[arg-type]
            except ValueError:
                return None
            return int(f) if f.is_integer() else None

    def meta_float(self, key: str) -> float | None:
        raw = self.metadata.get(key)
        try:
            return float(raw) if raw not in (None, "None", "") else None  # type: ignore[arg-type]
        except ValueError:
            return None

    def meta_json(self, key: str) -> Any:
        """A JSON-encoded metadata value decoded, or None when missing or not JSON."""
        raw = self.metadata.get(key)
        if raw is None:
            return None
        try:
            return parse_bounded(json.loads, raw)
        except (ValueError, TooDeep):
            return None


def read_header(path: str | Path) -> SafetensorsHeader:
    """Read and check the header of ``path``. Raises :class:`SafetensorsError` with the reason."""
    path = Path(path)
    src = str(path)
    try:
        fd = open_regular_file(path)  # a FIFO or a device would block or never end
    except ValueError as exc:
        raise SafetensorsError(str(exc), source=src) from None
    except OSError as exc:
        raise SafetensorsError(f"cannot read: {exc.strerror or exc}", source=src) from None
    try:
        with os.fdopen(fd, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(0)
            head = fh.read(8)
            if len(head) < 8:
                raise SafetensorsError(f"not a safetensors file: only {len(head)} bytes", source=src)
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_SIZE or n + 8 > size:
                raise SafetensorsError(
                    f"not a safetensors file: the first 8 bytes give a header of {n} bytes but the file has "
                    f"{size} (a .ckpt/.pt pickle, or a truncated download?)",
                    source=src,
                )
            raw = fh.read(n)
    except OSError as exc:
        raise SafetensorsError(f"cannot read: {exc.strerror or exc}", source=src) from None
    try:
        header = parse_bounded(json.loads, raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SafetensorsError("not a safetensors file: the header is not UTF-8 JSON", source=src) from None
    except TooDeep:
        raise SafetensorsError(
            f"not a safetensors file: the header nests more than {MAX_NESTING} levels", source=src
        ) from None
    if not isinstance(header, dict):
        raise SafetensorsError("not a safetensors file: the header is not a JSON object", source=src)
    meta_raw = header.pop("__metadata__", None) or {}
    warnings: list[str] = []
    if not isinstance(meta_raw, dict):
        warnings.append("__metadata__ is not an object; ignored")
        meta_raw = {}
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta_raw.items()}
    tensors: dict[str, TensorInfo] = {}
    data_len = size - 8 - n
    furthest = 0
    for name, info in header.items():
        try:
            dtype = str(info["dtype"])
            shape = [int(x) for x in info["shape"]]
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"tensor {name!r} has a malformed entry in the header", source=src) from None
        tensors[name] = TensorInfo(dtype, shape, (begin, end))
        furthest = max(furthest, end)
    if furthest > data_len:
        warnings.append(
            f"file is truncated: the header describes {furthest} bytes of tensor data but only {data_len} follow"
        )
    return SafetensorsHeader(
        path=path, file_size=size, header_size=n, metadata=metadata, tensors=tensors, warnings=warnings
    )


def read_metadata(path: str | Path) -> dict[str, str]:
    """Just ``__metadata__`` (all strings)."""
    return read_header(path).metadata


def _top(freq: dict[str, Any], n: int) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for tags in freq.values():
        if isinstance(tags, dict):
            for tag, c in tags.items():
                if isinstance(c, int):
                    counts[tag] = counts.get(tag, 0) + c
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def lora_summary(h: SafetensorsHeader, *, top_tags: int = 20) -> dict[str, Any]:
    """The settings a person asks about, from the metadata and the tensor table.

    The rank is also read from the ``lora_down`` weights' shapes, because ``ss_network_dim`` is the CLI value —
    "None" when not given although networks.lora then uses 4 (``networks/lora.py`` ``create_network``).
    """
    m = h.metadata
    ranks = sorted({t.shape[0] for k, t in h.tensors.items() if k.endswith("lora_down.weight") and t.shape})
    modules = {k.rsplit(".", 2)[0] for k in h.tensors if ".lora_" in k or k.endswith(".alpha")}
    dtypes = sorted({t.dtype for t in h.tensors.values()})
    te = any(k.startswith(("lora_te", "lora_te1", "lora_te2")) for k in h.tensors)
    unet = any(k.startswith("lora_unet") for k in h.tensors)
    freq = h.meta_json("ss_tag_frequency")
    datasets = h.meta_json("ss_dataset_dirs")
    # In --dataset_config mode the resolution lives only in ss_datasets; modelspec.resolution then shows the
    # --resolution default (512x512), not what was trained: train_network.py writes ss_resolution only without a
    # --dataset_config, and library/train_util.py get_sai_model_spec takes the resolution from args.
    ds_list = h.meta_json("ss_datasets")
    first_ds = ds_list[0] if isinstance(ds_list, list) and ds_list and isinstance(ds_list[0], dict) else {}
    resolution = m.get("ss_resolution") or first_ds.get("resolution") or m.get("modelspec.resolution")
    if isinstance(resolution, list):
        resolution = "x".join(str(x) for x in resolution)
    elif isinstance(resolution, str):
        # ss_resolution is str() of sd-scripts' parsed (width, height) tuple, "(64, 64)": written as "64x64"
        # like the other two sources, so a sweep mixing folder mode and --dataset_config runs compares equal.
        wh = re.fullmatch(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)", resolution)
        if wh:
            resolution = f"{wh[1]}x{wh[2]}"
    summary: dict[str, Any] = {
        "file": str(h.path),
        "file_size": h.file_size,
        "output_name": m.get("ss_output_name") or m.get("modelspec.title"),
        "architecture": m.get("modelspec.architecture"),
        "base_model_version": m.get("ss_base_model_version"),
        "base_model": m.get("ss_sd_model_name"),
        "network_module": m.get("ss_network_module"),
        "network_dim": h.meta_int("ss_network_dim"),
        "network_alpha": h.meta_float("ss_network_alpha"),
        "rank_from_weights": ranks[0] if len(ranks) == 1 else (ranks or None),
        "network_args": h.meta_json("ss_network_args"),
        "trains_text_encoder": te,
        "trains_unet": unet,
        "modules": len(modules),
        "tensors": len(h.tensors),
        "dtypes": dtypes,
        "epoch": h.meta_int("ss_epoch"),
        "steps": h.meta_int("ss_steps"),
        "num_epochs": h.meta_int("ss_num_epochs"),
        "max_train_steps": h.meta_int("ss_max_train_steps"),
        "batches_per_epoch": h.meta_int("ss_num_batches_per_epoch"),
        "train_images": h.meta_int("ss_num_train_images"),
        "reg_images": h.meta_int("ss_num_reg_images"),
        "validation_images": h.meta_int("ss_num_validation_images"),
        "batch_size": h.meta_int("ss_total_batch_size")
        or h.meta_int("ss_batch_size_per_device")
        or first_ds.get("batch_size_per_device"),
        "resolution": resolution,
        "optimizer": m.get("ss_optimizer"),
        "learning_rate": m.get("ss_learning_rate"),
        "unet_lr": m.get("ss_unet_lr"),
        "text_encoder_lr": m.get("ss_text_encoder_lr"),
        "lr_scheduler": m.get("ss_lr_scheduler"),
        "mixed_precision": m.get("ss_mixed_precision"),
        "seed": h.meta_int("ss_seed"),
        "clip_skip": h.meta_int("ss_clip_skip"),
        "noise_offset": h.meta_float("ss_noise_offset"),
        "dataset_dirs": datasets,
        "tag_frequency_top": _top(freq, top_tags) if isinstance(freq, dict) else None,
        "training_started_at": h.meta_float("ss_training_started_at"),
        "training_finished_at": h.meta_float("ss_training_finished_at"),
        "sd_scripts_commit": m.get("ss_sd_scripts_commit_hash"),
        "has_metadata": bool(m),
        "has_training_metadata": "ss_epoch" in m,
        "warnings": list(h.warnings),
    }
    if not m:
        summary["warnings"].append("no metadata in the header (not written by sd-scripts, or stripped)")
    elif "ss_epoch" not in m:
        summary["warnings"].append(
            "no ss_epoch/ss_steps in the metadata: saved with --no_metadata, or not by sd-scripts' train_network"
        )
    return summary


def format_summary(summary: dict[str, Any], metadata: dict[str, str] | None = None) -> str:
    """A human-readable block for ``kohya-recipe inspect``; with ``metadata``, every raw key as well."""
    lines: list[str] = [f"{summary['file']}  ({summary['file_size']:,} bytes)"]

    def row(label: str, value: Any) -> None:
        if value is not None and value != "" and value != []:
            lines.append(f"  {label:<20} {value}")

    row("output name", summary["output_name"])
    row("architecture", summary["architecture"])
    row("base model", " / ".join(str(x) for x in (summary["base_model"], summary["base_model_version"]) if x))
    dim = summary["network_dim"]
    rank = summary["rank_from_weights"]
    dim_text = f"{dim}" if dim is not None else "None"
    if rank is not None and rank != dim:
        dim_text += f" (weights have rank {rank})"
    row("network", summary["network_module"])
    row("dim / alpha", f"{dim_text} / {summary['network_alpha']}")
    row("network args", summary["network_args"])
    parts = [p for p, on in (("U-Net", summary["trains_unet"]), ("text encoder", summary["trains_text_encoder"])) if on]
    if summary["tensors"]:  # a header without tensors (not a LoRA) would read "trains (0 modules, )"
        row("trains", " + ".join(parts) + f" ({summary['modules']} modules, {', '.join(summary['dtypes'])})")
    if summary["epoch"] is not None:
        of = f" of {summary['num_epochs']}" if summary["num_epochs"] is not None else ""
        step = f", step {summary['steps']}" if summary["steps"] is not None else ""
        row("epoch", f"{summary['epoch']}{of}{step}")
    row("images", summary["train_images"])
    row("batches / epoch", summary["batches_per_epoch"])
    row("batch size", summary["batch_size"])
    row("resolution", summary["resolution"])
    row("optimizer", summary["optimizer"])
    row("learning rate", summary["learning_rate"])
    row(
        "unet / te lr",
        f"{summary['unet_lr']} / {summary['text_encoder_lr']}"
        if summary["unet_lr"] is not None or summary["text_encoder_lr"] is not None
        else None,
    )
    row("scheduler", summary["lr_scheduler"])
    row("precision", summary["mixed_precision"])
    row("seed", summary["seed"])
    if isinstance(summary["dataset_dirs"], dict):
        for d, info in summary["dataset_dirs"].items():
            if isinstance(info, dict):
                row("dataset", f"{d}: {info.get('img_count')} images x {info.get('n_repeats')} repeats")
    if summary["tag_frequency_top"]:
        row("top tags", ", ".join(f"{t} ({c})" for t, c in summary["tag_frequency_top"]))
    for w in summary["warnings"]:
        lines.append(f"  warning: {w}")
    if metadata is not None:
        lines.append("  metadata:")
        for key in sorted(metadata):
            value = metadata[key]
            if len(value) > 200:
                value = value[:200] + f"... ({len(metadata[key])} characters)"
            lines.append(f"    {key} = {value}")
    return "\n".join(lines)


@dataclass
class Inspection:
    """What ``kohya-recipe inspect`` shows of a file: the :func:`lora_summary` and every raw metadata key."""

    summary: dict[str, Any]
    metadata: dict[str, str]


def inspect_file(path: str | Path, *, top_tags: int = 20) -> Inspection:
    """Read ``path``'s header and summarise it (``top_tags``: how many caption tags to list)."""
    header = read_header(path)
    return Inspection(summary=lora_summary(header, top_tags=top_tags), metadata=header.metadata)


def format_inspection(found: Inspection, *, raw: bool = False) -> str:
    """The summary for people; with ``raw``, every metadata key as well."""
    return format_summary(found.summary, found.metadata if raw else None)
