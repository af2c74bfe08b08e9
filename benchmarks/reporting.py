"""What the benchmarks share to report figures: over seeds, and the machine they ran on."""

import os

import numpy as np


def mean_se(values):
  """'mean ± standard error' of `values` over seeds (the sample std / √n; nan for one seed)."""
  values = np.asarray(values, np.float64)
  se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
  return f"{values.mean():.3f} ± {se:.3f}"


def machine():
  """'<CPU model>, <n> usable cores': the machine a benchmark ran on."""
  model = "unknown CPU"
  try:
    with open("/proc/cpuinfo") as f:
      model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return f"{model}, {len(os.sched_getaffinity(0))} usable cores"


def load_average():
  """The 1, 5 and 15 minute load averages, e.g. '3.10 2.95 2.40' (the machine is shared)."""
  return " ".join(f"{value:.2f}" for value in os.getloadavg())
