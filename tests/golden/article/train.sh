#!/usr/bin/env bash
# Train CharacterAI-1-A with kohya-ss/sd-scripts, exactly as `kohya-recipe train` would.
# Written by kohya-recipe from resolved-recipe.toml; re-render instead of editing.
#
# Usage: SD_SCRIPTS=/path/to/sd-scripts ./train.sh
# Prefer `kohya-recipe train .`: it adds progress, outcome checks, run records and Ctrl-C handling.
set -euo pipefail
cd "$(dirname "$0")"
: "${SD_SCRIPTS:?set SD_SCRIPTS to your sd-scripts folder (the one containing train_network.py)}"
export PYTHONUNBUFFERED=1
exec accelerate launch --num_processes 1 --num_machines 1 --mixed_precision fp16 --dynamo_backend no --num_cpu_threads_per_process 2 "$SD_SCRIPTS/train_network.py" --config_file config.toml --dataset_config dataset.toml
