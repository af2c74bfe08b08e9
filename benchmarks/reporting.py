"""What the benchmarks share to report figures: over seeds, agreement of learned policies across
seeds, and the machine they ran on."""

import itertools
import os

import numpy as np


def mean_se(values):
  """'mean ± standard error' of `values` over seeds (the sample std / √n; nan for one seed)."""
  values = np.asarray(values, np.float64)
  se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
  return f"{values.mean():.3f} ± {se:.3f}"


def element_marginals(probabilities):
  """(p(e1 = e) + p(e2 = e)) / 2 of an E x E matrix of operation probabilities (numpy, float64)."""
  matrix = np.asarray(probabilities, np.float64)
  return (matrix.sum(axis=1) + matrix.sum(axis=0)) / 2


def spearman(a, b):
  """Spearman's rank correlation (average ranks for ties)."""
  def ranks(x):
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    for value in np.unique(x):  # ties share their mean rank
      r[x == value] = r[x == value].mean()
    return r
  ra, rb = ranks(np.asarray(a)), ranks(np.asarray(b))
  return float(np.corrcoef(ra, rb)[0, 1])


def mean_pairwise_spearman(vectors):
  """The mean of Spearman's correlation over every pair of `vectors` (nan for fewer than 2): how
  much the policies learned from different seeds agree (1 = the same ranking of elements)."""
  pairs = [spearman(a, b) for a, b in itertools.combinations(vectors, 2)]
  return float(np.mean(pairs)) if pairs else float("nan")


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
