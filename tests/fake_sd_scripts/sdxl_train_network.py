"""Fake kohya-ss/sd-scripts sdxl_train_network.py for kohya-recipe's tests (see library/fake_trainer.py)."""

from library.fake_trainer import main

if __name__ == "__main__":
    main(sdxl=True)
