"""The kohya_ss GUI: its fields as data, the recipe -> GUI JSON mapping, import of GUI configs, the GUI's TOML step."""
