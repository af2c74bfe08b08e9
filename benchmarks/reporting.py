"""What the benchmarks share to report figures over seeds."""

import numpy as np


def mean_se(values):
  """'mean ± standard error' of `values` over seeds (the sample std / √n; nan for one seed)."""
  values = np.asarray(values, np.float64)
  se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
  return f"{values.mean():.3f} ± {se:.3f}"
