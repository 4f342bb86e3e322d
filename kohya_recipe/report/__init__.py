"""The epoch report: which epoch to keep, and why.

The article ends with the question every LoRA trainer asks: which epoch do I keep? It reads the loss graphs,
takes the lowest-loss epoch (6) and the final one (8), and tries both — "don't base everything on a graph".
This module does exactly that from a run's files: it reads the TensorBoard events (:mod:`kohya_recipe.report.events`),
ranks the epochs with their uncertainty (:mod:`kohya_recipe.report.ranking`), maps each epoch to its checkpoint and
confirms the mapping from the files' metadata (:mod:`kohya_recipe.report.checkpoints`), picks the best N epochs plus the
final one, and writes an A1111 prompt for each pick. A folder of several runs (a sweep) gets one comparison table.

What it accepts (:func:`kohya_recipe.report.locate.locate_run`):

* a kohya-recipe project (its facts file, :func:`kohya_recipe.layout.read_facts`, says where its log and
  checkpoints are, its output name and sample prompts; an older project without one, its ``config.toml``);
* any sd-scripts run folder with the ``--config_file`` it was launched with (``logging_dir``, ``output_dir``,
  ``output_name``, ``sample_prompts`` are read from it, relative to the folder, which was the trainer's cwd);
* a folder with ``log/`` (and ``model/``), or a bare log folder or event file (checkpoints via ``model_dir``);
* a sweep folder: ``sweep.toml`` from ``kohya-recipe sweep``, or a folder whose sub-folders are runs.

Nothing heavy is imported on the way to ``report --json``: no recipe model (pydantic alone costs ~130 ms of the
0.3 s budget; the project's facts file and its trainer files say what the run is). Plots and HTML import
matplotlib/jinja2 only when asked for.
"""
