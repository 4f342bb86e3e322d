"""Plain facts about the kohya_ss GUI: its LoRA-tab fields, their widgets and the checks those widgets make.

Read by the recipe (its ``[gui]`` pass-through table) and by everything in ``gui/``; it knows nothing of recipes."""
