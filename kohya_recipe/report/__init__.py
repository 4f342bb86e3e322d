"""Reporting: TensorBoard events, epoch ranking, checkpoints and their metadata, text/HTML/plots."""
