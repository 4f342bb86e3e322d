"""The dataset stage: images, captions, folder scan and layout detection, the checks, and the step plan."""
