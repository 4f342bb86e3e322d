"""Training: the launch builder, the runner and its progress display, outcomes, resume, doctor, queue, sweeps."""
