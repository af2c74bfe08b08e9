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


def paired_differences(values, baseline):
  """values[seed] - baseline[seed] over the seeds both hold, in seed order: a row's difference
  from a baseline on the same data, whose seed-to-seed spread cancels."""
  return [values[seed] - baseline[seed] for seed in sorted(values) if seed in baseline]


def element_marginals(probabilities):
  """(p(e1 = e) + p(e2 = e)) / 2 of an E x E matrix of operation probabilities (numpy, float64)."""
  matrix = np.asarray(probabilities, np.float64)
  return (matrix.sum(axis=1) + matrix.sum(axis=0)) / 2


def spearman(a, b):
  """Spearman's rank correlation (average ranks for ties); nan when either vector is constant (a
  fixed uniform policy ranks nothing), where np.corrcoef would warn and return nan."""
  def ranks(x):
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    for value in np.unique(x):  # ties share their mean rank
      r[x == value] = r[x == value].mean()
    return r
  ra, rb = ranks(np.asarray(a)), ranks(np.asarray(b))
  if np.ptp(ra) == 0 or np.ptp(rb) == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])


def mean_pairwise_spearman(vectors):
  """The mean of Spearman's correlation over every pair of `vectors` (nan for fewer than 2): how
  much the policies learned from different seeds agree (1 = the same ranking of elements)."""
  pairs = [spearman(a, b) for a, b in itertools.combinations(vectors, 2)]
  return float(np.mean(pairs)) if pairs else float("nan")


def pair_regression(perturbations, differences):
  """Least squares d = ε·β over antithetic pairs: how much of a pair's reward difference ε explains.

  Under `element_es`, pair j of a period trains at θ ± σAε_j, so its reward difference d_j is,
  to first order, 2σ ε_j·∇ plus noise: β estimates 2σ times the element gradient the outer step
  follows, from every pair of a run at once.

  Args:
    perturbations: float [n, E], ε of each pair's first member.
    differences: float [n], the first member's reward minus the second's.

  Returns:
    (β [E], its standard errors [E], F): F is the statistic of the test β = 0, the explained
    variance per parameter over the residual variance per degree of freedom; ≈ 1 when ε explains
    nothing, and F − 1 estimates n/E times the ratio of the signal's variance to the noise's.
  """
  x = np.asarray(perturbations, np.float64)
  d = np.asarray(differences, np.float64)
  beta = np.linalg.lstsq(x, d, rcond=None)[0]
  residual = d - x @ beta
  noise = residual @ residual / (len(d) - x.shape[1])
  covariance = noise * np.linalg.inv(x.T @ x)
  f_statistic = beta @ np.linalg.solve(covariance, beta) / x.shape[1]
  return beta, np.sqrt(np.diag(covariance)), float(f_statistic)


def permutation_p(perturbations, differences, f_statistic, draws=500, seed=0):
  """The share of `draws` random re-pairings of differences with perturbations whose F is at least
  `f_statistic`: its p-value without assuming Gaussian noise."""
  rng = np.random.default_rng(seed)
  null = [pair_regression(perturbations, rng.permutation(differences))[2] for _ in range(draws)]
  return float(np.mean(np.asarray(null) >= f_statistic))


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
