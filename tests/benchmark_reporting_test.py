"""The statistics the benchmarks share (benchmarks/reporting.py): agreement across seeds, and how
much of a pair's reward difference its perturbation explains."""

import itertools
import json

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
  expected = np.corrcoef([0, 1.5, 1.5, 3], [0, 1, 2, 3])[0, 1]
  assert reporting.spearman(a, b) == pytest.approx(expected)


def test_spearman_of_a_constant_vector_is_nan_without_a_warning(recwarn):
  # A fixed uniform policy's marginals are all equal: they rank nothing.
  uniform = np.full(42, 1 / 42)
  assert np.isnan(reporting.spearman(uniform, np.arange(42.0)))
  assert np.isnan(reporting.spearman(np.arange(42.0), uniform))
  assert np.isnan(reporting.mean_pairwise_spearman([uniform, uniform, uniform]))
  assert not recwarn.list


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


def test_pair_regression_recovers_a_known_gradient_within_its_standard_errors():
  rng = np.random.default_rng(4)
  beta = rng.normal(size=37) * 0.01
  x = rng.normal(size=(4000, 37))
  d = x @ beta + rng.normal(size=4000) * 0.02
  estimate, se, f_statistic = reporting.pair_regression(x, d)
  # The closed form of OLS standard errors: sigma / sqrt(n) for standard normal regressors.
  np.testing.assert_allclose(se, 0.02 / np.sqrt(4000), rtol=0.1)
  assert np.mean(np.abs(estimate - beta) / se < 3) > 0.97
  # E[F] = 1 + n |β|² / (E σ²) for standard normal regressors.
  expected = 1 + 4000 * (beta @ beta) / (37 * 0.02 ** 2)
  assert f_statistic == pytest.approx(expected, rel=0.15)
  assert reporting.permutation_p(x, d, f_statistic, draws=50) == 0.0


def test_pair_regression_f_averages_one_when_the_perturbation_explains_nothing():
  rng = np.random.default_rng(5)
  f_values = [reporting.pair_regression(rng.normal(size=(160, 37)), rng.normal(size=160))[2]
              for _ in range(400)]
  # Under the null, F(37, 123) has mean 123/121 and standard deviation about 0.27.
  mean, se = np.mean(f_values), np.std(f_values, ddof=1) / np.sqrt(len(f_values))
  assert abs(mean - 123 / 121) < 3 * se
  x, d = rng.normal(size=(160, 37)), rng.normal(size=160)
  p = reporting.permutation_p(x, d, reporting.pair_regression(x, d)[2], draws=400)
  assert 0.0 < p < 1.0


@pytest.mark.parametrize("es_groups", ["elements", "operations"])
def test_reward_signal_pairs_each_period_with_its_perturbations(tmp_path, es_groups):
  """A run directory whose accuracies are an exact linear function of each period's ε: the
  regression must recover β exactly, which it does only if periods and pairs line up (and,
  with one ε per operation, regresses on the 15 operations of paper_identity's 37 elements)."""
  tf = pytest.importorskip("tensorflow")
  from benchmarks import reward_signal  # pylint: disable=import-outside-toplevel
  from ohl_tf import augment  # pylint: disable=import-outside-toplevel
  from ohl_tf import estimators  # pylint: disable=import-outside-toplevel
  seed, periods, trajectories, elements = 7, 5, 4, 37
  groups = (augment.PAPER_IDENTITY.operation_groups if es_groups == "operations"
            else tuple(range(elements)))
  columns = [groups.index(g) for g in range(max(groups) + 1)]  # one element of each group
  beta = np.linspace(-0.01, 0.01, len(columns))
  accuracies = np.stack([
      0.5 + 0.5 * estimators.element_perturbations(
          seed, t, trajectories, elements, groups).numpy()[:, columns] @ beta
      for t in range(periods)])  # ±ε: a pair's difference is ε·β
  (tmp_path / "config.json").write_text(json.dumps(
      {"estimator": "element_es", "policy": "ohl", "seed": seed, "es_groups": es_groups,
       "search_space": "paper_identity"}))
  # A run that has finished periods - 1 outer steps: the last row is still zeros.
  accuracies[-1] = 0
  tf.train.Checkpoint(val_history=tf.Variable(accuracies, dtype=tf.float32),
                      outer_step=tf.Variable(periods - 1, dtype=tf.int64),
                      theta=tf.Variable(tf.zeros([elements ** 2]))).save(
                          str(tmp_path / "checkpoints" / "ckpt"))
  run_seed, perturbations, differences = reward_signal.run_pairs(str(tmp_path))
  assert run_seed == seed
  assert perturbations.shape == ((periods - 1) * trajectories // 2, len(columns))
  np.testing.assert_allclose(differences, perturbations @ beta, atol=1e-6)
  assert len(reward_signal.run_pairs(str(tmp_path), max_periods=2)[2]) == 2 * trajectories // 2


def test_paired_differences_take_the_seeds_both_rows_hold_in_seed_order():
  values = {2: 50.0, 0: 48.0, 1: 47.0, 5: 40.0}
  baseline = {0: 51.0, 1: 50.0, 2: 49.0, 3: 60.0}
  assert reporting.paired_differences(values, baseline) == [-3.0, -3.0, 1.0]
  assert reporting.mean_se(reporting.paired_differences(values, baseline)) == "-1.667 ± 1.333"
