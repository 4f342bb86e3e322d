"""Fake `accelerate` package for kohya-recipe's tests: only `python -m accelerate.commands.launch` exists.

Put `tests/fake_sd_scripts/site` on PYTHONPATH to make a Python without the real accelerate look like one that
has it. The launcher behaves like accelerate 1.6's simple launcher (see commands/launch.py).
"""

__version__ = "1.6.0"
