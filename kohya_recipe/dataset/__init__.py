"""The dataset stage: images, captions, layout detection and folder scan, the checks, and the step plan.

- reading: :mod:`.images` (headers, decoding), :mod:`.captions` (caption files as sd-scripts reads them);
- the doctor: :mod:`.detect` (what a folder is) -> :mod:`.scan` (what sd-scripts reads from it) ->
  :mod:`.checks` (one module per check family) with :mod:`.settings` and :mod:`.rules`, gathered by
  :mod:`.check` (``check_dataset``) into a :mod:`.result`, shown by :mod:`.format`; :mod:`.findings` is what
  every check reports;
- caption editing: :mod:`.caption_edits`, :mod:`.tag_stats`;
- the step plan: :mod:`.plan` (``make_plan``) over :mod:`.plan_model`, in words by :mod:`.plan_text`.
"""
