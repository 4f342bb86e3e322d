"""Training: launch a rendered project with sd-scripts and keep track of runs.

- ``launch``: find sd-scripts and a Python with accelerate; build the command (argv + env + cwd, pure).
- ``runner``: run it, tee the output to a log, show progress, stop it cleanly; ``progress`` parses the output.
- ``outcome``: judge a finished run by its files and output; ``run``: the ``train`` verb, resume, run records.
- ``doctor``: compare the installed sd-scripts' options with the bundled spec.
- ``sweep`` (grid expansion, writing the runs) and ``sweepfile`` (the ``sweep.toml`` manifest).
- The queue: ``queuefile`` (entries, states, the file), ``locks`` (file and GPU-set locks), ``liveness`` (is a
  runner or trainer still alive?), ``queue_edit`` (add/list/remove) and ``runqueue`` (``queue run``).
"""
