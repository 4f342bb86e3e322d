"""Plain facts about kohya-ss/sd-scripts: its options, its sample-prompt line, its repeats folders, its buckets.

Nothing here knows about recipes; everything above reads these facts."""
