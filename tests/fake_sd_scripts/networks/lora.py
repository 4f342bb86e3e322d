"""Placeholder for sd-scripts' networks/lora.py: the fake trainer only needs the module name to exist."""
