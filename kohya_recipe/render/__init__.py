"""Renderers: one module per file the trainer reads (config TOML, dataset TOML, sample prompts), and the project."""
