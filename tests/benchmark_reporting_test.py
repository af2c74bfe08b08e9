"""The agreement statistic of the accuracy and policy-learning benchmarks (benchmarks/reporting.py)."""

import itertools

import numpy as np
import pytest

from benchmarks import reporting


def _spearman_closed_form(a, b):
  """1 − 6 Σ d² / (n (n² − 1)), Spearman's formula for rankings without ties."""
  ranks = lambda x: np.argsort(np.argsort(x))
  d = ranks(a) - ranks(b)
  n = len(a)
  return 1 - 6 * np.sum(d ** 2) / (n * (n ** 2 - 1))


def test_spearman_matches_the_closed_form_without_ties():
  rng = np.random.default_rng(0)
  for _ in range(20):
    a, b = rng.normal(size=37), rng.normal(size=37)
    assert reporting.spearman(a, b) == pytest.approx(_spearman_closed_form(a, b), abs=1e-12)


def test_spearman_is_one_for_any_increasing_map_and_minus_one_reversed():
  a = np.random.default_rng(1).uniform(size=36)
  assert reporting.spearman(a, np.exp(5 * a)) == pytest.approx(1.0)
  assert reporting.spearman(a, -a ** 3) == pytest.approx(-1.0)


def test_spearman_gives_ties_their_mean_rank():
  # ranks of a: 0, 1.5, 1.5, 3 (mean rank for the tie); of b: 0, 1, 2, 3.
  a, b = [1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]
  assert reporting.spearman(a, b) == pytest.approx(np.corrcoef([0, 1.5, 1.5, 3], [0, 1, 2, 3])[0, 1])


def test_mean_pairwise_spearman_averages_every_pair():
  vectors = np.random.default_rng(2).normal(size=(4, 10))
  expected = np.mean([reporting.spearman(a, b) for a, b in itertools.combinations(vectors, 2)])
  assert reporting.mean_pairwise_spearman(vectors) == pytest.approx(expected)
  assert np.isnan(reporting.mean_pairwise_spearman(vectors[:1]))


def test_element_marginals_are_half_the_row_plus_column_sums():
  matrix = np.random.default_rng(3).dirichlet(np.ones(37 * 37)).reshape(37, 37)
  marginals = reporting.element_marginals(matrix)
  assert marginals.sum() == pytest.approx(1.0)
  assert marginals[5] == pytest.approx((matrix[5].sum() + matrix[:, 5].sum()) / 2)
