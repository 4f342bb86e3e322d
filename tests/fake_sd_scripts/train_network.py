"""Fake kohya-ss/sd-scripts train_network.py for kohya-recipe's tests (see library/fake_trainer.py)."""

from library.fake_trainer import main

if __name__ == "__main__":
    main(sdxl=False)
