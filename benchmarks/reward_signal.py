r"""How much of the outer step's reward signal a learned policy can belong to the data.

For finished `element_es` runs (their run directories), every antithetic pair of every period
trained at θ ± σAε and left a difference of validation accuracies (the checkpoint's
`val_history`); ε is a function of the run's seed and the period, so it is recomputed here
(`ohl_tf.estimators.element_perturbations`; one column per element, or per operation under
--es_groups=operations). This fits d = ε·β by least squares per run and over
all the runs given (`reporting.pair_regression`) and prints, per run and pooled: the F statistic
of β = 0 and its permutation p-value, the noise of d, and, across runs, the mean pairwise
Spearman correlation of their β.

Why: the agreement of the learned p_θ across seeds is a rank correlation of E numbers over three
seeds, itself noisy (±0.15). F is sharper: F − 1 estimates the ratio of the variance of β across
elements (the signal) to the variance of its estimation error, so two runs with the same β and
independent noise give estimates that correlate by about (F − 1) / F. An agreement of 0.5 needs
F ≈ 2 per run; as the error variance falls with the number of pairs (trajectories / 2 × periods),
F − 1 grows in proportion to them, which says how much more evidence a run needs.

  python benchmarks/reward_signal.py RUN_DIR [RUN_DIR ...]
  python benchmarks/reward_signal.py --periods=30 RUN_DIR ...   # the first 30 outer steps only

A run still training contributes the outer steps it has checkpointed; `--periods` compares
settings at the same evidence.
"""

import json
import os
import pathlib
import sys

from absl import app
from absl import flags
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT))
sys.path.insert(0, str(_ROOT / "benchmarks"))
import reporting  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import augment  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import estimators  # pylint: disable=g-import-not-at-top,wrong-import-position

_PERIODS = flags.DEFINE_integer("periods", 0, "Use only the first this many outer steps of every "
                                "run (0: every checkpointed one).")


def run_pairs(run_dir, max_periods=0):
  """(seed, ε [pairs, E or G], d [pairs]) of the checkpointed outer steps of an element_es run
  directory (the first `max_periods` of them, if > 0)."""
  config = _config(run_dir)
  if config["estimator"] != "element_es" or config["policy"] != "ohl":
    sys.exit(f"{run_dir}: not an element_es run (policy={config['policy']}, "
             f"estimator={config['estimator']}); only its pairs have a perturbation to regress on")
  reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints"))
  periods = int(reader.get_tensor("outer_step/.ATTRIBUTES/VARIABLE_VALUE"))
  if max_periods:
    periods = min(periods, max_periods)
  accuracies = reader.get_tensor("val_history/.ATTRIBUTES/VARIABLE_VALUE")[:periods]
  num_elements = int(round(np.sqrt(reader.get_tensor("theta/.ATTRIBUTES/VARIABLE_VALUE").size)))
  trajectories = accuracies.shape[1]
  # --es_groups=operations: one ε per operation; regress on one column per group.
  groups = estimators.perturbation_groups(augment.search_space(config["search_space"]),
                                          config["es_groups"]) or tuple(range(num_elements))
  columns = [groups.index(group) for group in range(max(groups) + 1)]
  perturbations, differences = [], []
  for period, scores in enumerate(accuracies):
    eps = estimators.element_perturbations(config["seed"], period, trajectories, num_elements,
                                           groups).numpy()[:, columns]
    perturbations += [eps[2 * j] for j in range(trajectories // 2)]
    differences += [scores[2 * j] - scores[2 * j + 1] for j in range(trajectories // 2)]
  return config["seed"], np.array(perturbations), np.array(differences)


def _config(run_dir):
  """A run's config.json, with the defaults of settings older runs did not record."""
  config = json.loads(pathlib.Path(run_dir, "config.json").read_text())
  return {"search_space": "paper", "es_groups": "elements", **config}


def describe(label, perturbations, differences):
  beta, _, f_statistic = reporting.pair_regression(perturbations, differences)
  p = reporting.permutation_p(perturbations, differences, f_statistic)
  print(f"  {label:12s} {len(differences):6d} {differences.std():9.4f} {f_statistic:7.2f} "
        f"{p:9.3f}")
  return beta


def main(argv):
  run_dirs = argv[1:]
  if not run_dirs:
    sys.exit("Give the run directories of finished element_es runs (python -m ohl_tf.main "
             "--policy=ohl --estimator=element_es ...).")
  # What the columns of a run's ε mean: checked before any run's pairs are recomputed.
  settings = {run_dir: (config["search_space"], config["es_groups"])
              for run_dir, config in zip(run_dirs, map(_config, run_dirs))}
  if len(set(settings.values())) > 1:
    sys.exit(f"The runs' ε have different coordinates (search space, --es_groups): {settings}; "
             "give runs of one setting.")
  runs = [run_pairs(run_dir, _PERIODS.value) for run_dir in run_dirs]
  print(f"reward_signal, {reporting.machine()}: d = ε·β over antithetic pairs "
        "(validation accuracy differences)")
  print(f"  {'run':12s} {'pairs':>6s} {'std d':>9s} {'F':>7s} {'perm. p':>9s}")
  betas = [describe(f"seed {seed}", x, d) for seed, x, d in runs]
  if len(runs) > 1:
    describe("pooled", np.concatenate([x for _, x, _ in runs]),
             np.concatenate([d for _, _, d in runs]))
    print(f"  agreement of the runs' β (mean pairwise Spearman): "
          f"{reporting.mean_pairwise_spearman(betas):.2f}")


if __name__ == "__main__":
  app.run(main)
