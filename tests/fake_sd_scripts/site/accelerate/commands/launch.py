"""Fake `accelerate launch` (accelerate 1.6.0 `commands/launch.py`, single-process path).

Like the real `simple_launcher`: runs `[sys.executable, script, *args]` in a child process (same process group,
so a Ctrl-C to the group reaches both), waits, and turns a non-zero child exit into
`subprocess.CalledProcessError` (exit 1, traceback on stderr). A SIGINT while waiting raises KeyboardInterrupt in
`process.wait()`; the interpreter then dies of SIGINT (a shell shows exit 130; `subprocess` shows -2), as in the
fixture `interrupted`. Without explicit values it prints accelerate's "not passed ... defaults used" warning.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def launch_command_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser("Accelerate launch command", allow_abbrev=False)
    parser.add_argument("--config_file", default=None)
    parser.add_argument("--quiet", "-q", action="store_true")
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--multi_gpu", action="store_true")
    parser.add_argument("--mixed_precision", choices=["no", "fp16", "bf16", "fp8"])
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--num_machines", type=int, default=None)
    parser.add_argument("--num_cpu_threads_per_process", type=int, default=None)
    parser.add_argument("--dynamo_backend", type=str, default=None)
    parser.add_argument("--gpu_ids", default=None)
    parser.add_argument("--main_process_port", type=int, default=None)
    parser.add_argument("-m", "--module", action="store_true")
    parser.add_argument("training_script", type=str)
    parser.add_argument("training_script_args", nargs=argparse.REMAINDER)
    return parser


def simple_launcher(args: argparse.Namespace) -> None:
    cmd = [sys.executable, "-m", args.training_script] if args.module else [sys.executable, args.training_script]
    cmd += args.training_script_args
    env = os.environ.copy()
    env["ACCELERATE_MIXED_PRECISION"] = str(args.mixed_precision)
    env["ACCELERATE_DYNAMO_BACKEND"] = str(args.dynamo_backend).upper()
    env["OMP_NUM_THREADS"] = str(args.num_cpu_threads_per_process)
    if args.gpu_ids not in (None, "all"):
        env["CUDA_VISIBLE_DEVICES"] = args.gpu_ids
    process = subprocess.Popen(cmd, env=env)
    process.wait()
    if process.returncode != 0:
        if not args.quiet:
            raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)
        sys.exit(1)


def launch_command(args: argparse.Namespace) -> None:
    if args.multi_gpu and args.num_processes is not None and args.num_processes < 2:
        raise ValueError("You need to use at least 2 processes to use `--multi_gpu`.")
    warned = []
    if args.num_processes is None:
        warned.append("\t`--num_processes` was set to a value of `0`")
        args.num_processes = 0
    if args.num_machines is None:
        warned.append("\t`--num_machines` was set to a value of `1`")
        args.num_machines = 1
    if args.mixed_precision is None:
        warned.append("\t`--mixed_precision` was set to a value of `'no'`")
        args.mixed_precision = "no"
    if args.dynamo_backend is None:
        warned.append("\t`--dynamo_backend` was set to a value of `'no'`")
        args.dynamo_backend = "no"
    if args.num_cpu_threads_per_process is None:
        args.num_cpu_threads_per_process = 1
    if warned:
        message = "The following values were not passed to `accelerate launch` and had defaults used instead:\n"
        message += "\n".join(warned)
        message += (
            "\nTo avoid this warning pass in values for each of the problematic parameters or run `accelerate config`."
        )
        print(message, file=sys.stderr, flush=True)
    # No GPUs here: every configuration runs the single-process launcher (multi-GPU needs torch.distributed).
    simple_launcher(args)


def main() -> None:
    parser = launch_command_parser()
    args = parser.parse_args()
    launch_command(args)


if __name__ == "__main__":
    main()
