"""The recipe: strict models, loading and resolving (preset, file, trigger, class, --set), and presets."""
