"""The dataset checks, one module per family; each returns :class:`~kohya_recipe.dataset.findings.Finding` s.

- :mod:`.layout` — the subsets against the recipe (regularization, empty folders, repeats) and the image count;
- :mod:`.files` — files sd-scripts silently skips or fails on;
- :mod:`.images` — unreadable/corrupt images, resolution and upscaling, EXIF rotation, alpha, aspect mix;
- :mod:`.duplicates` — byte-identical and perceptually near-identical images;
- :mod:`.captions` — caption files (extension, missing, empty, not text, orphans, BOM, several lines);
- :mod:`.trigger` — the trigger word in every caption;
- :mod:`.tags` — caption format (length, tokens, sentences, repeated tags) and the tag table;
- :mod:`.shots` — the article's shot list and contradicting tags.
"""
