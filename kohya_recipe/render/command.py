"""The ``accelerate launch`` arguments a recipe needs (pure: no file system, no sd-scripts lookup).

The GUI builds the same shape of command (kohya_ss ``kohya_gui/class_accelerate_launch.py AccelerateLaunch.run_cmd``):
accelerate's own flags first, then the script, then ``--config_file``. Every accelerate flag is passed explicitly,
because without an accelerate config ``accelerate launch`` warns and guesses (accelerate ``commands/launch.py
_validate_launch_command``).
"""

from __future__ import annotations

from kohya_recipe.layout import CONFIG_FILE, DATASET_FILE
from kohya_recipe.recipe.models import Recipe


def accelerate_args(recipe: Recipe) -> list[str]:
    """``["accelerate", "launch", ...flags]`` — everything before the script path."""
    acc = recipe.accelerate
    mixed = acc.mixed_precision or recipe.training.mixed_precision
    args = [
        "accelerate",
        "launch",
        "--num_processes",
        str(acc.num_processes),
        "--num_machines",
        str(acc.num_machines),
        "--mixed_precision",
        mixed,
        "--dynamo_backend",
        acc.dynamo_backend,
        "--num_cpu_threads_per_process",
        str(acc.num_cpu_threads_per_process),
    ]
    if acc.num_processes > 1:
        args.append("--multi_gpu")
    if acc.gpu_ids:
        args += ["--gpu_ids", ",".join(acc.gpu_ids)]
    if acc.main_process_port is not None:
        args += ["--main_process_port", str(acc.main_process_port)]
    return args


def script_args(*, resume_dir: str | None = None) -> list[str]:
    """The arguments after the script path; paths are relative to the project folder (the cwd)."""
    args = ["--config_file", CONFIG_FILE, "--dataset_config", DATASET_FILE]
    if resume_dir:
        args += ["--resume", resume_dir]
    return args
