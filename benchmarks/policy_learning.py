r"""Does θ learn? OHL on data where the harmful elements are known, against its baselines.

The synthetic dataset (ohl_tf/datasets.py) carries its label in colour; Invert and the three
Solarize elements destroy it (datasets.HARMFUL_ELEMENTS), the other 32 leave it readable. Under
the uniform policy the ops holding a harmful element get 1 - (32/36)^2 = 0.2099 of the
probability; a search that learns puts less there. In one process, at the same budget, this runs
--policy=ohl, uniform and cutout (no operation; Cutout as the other two), and reports:
  * the probability of the pairs holding a harmful element, and each harmful element's marginal
    against the uniform 1/36 (ohl only: uniform and none keep θ = 0);
  * the test accuracy of each policy;
  * why θ moves as it does: per outer step, the correlation across trajectories between the
    share of harmful ops a trajectory applied (its count fluctuation, the only thing REINFORCE
    can credit) and its reward. Near zero means the reward is noise to the policy gradient.

  python benchmarks/policy_learning.py                      # quickstart budget, ~10 min, 2 cores
  python benchmarks/policy_learning.py --reward=accuracy    # the paper's reward
"""

import datetime
import json
import os
import pathlib
import platform
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT))

from ohl_tf import augment  # pylint: disable=g-import-not-at-top
from ohl_tf import datasets  # pylint: disable=g-import-not-at-top
from ohl_tf import main as ohl_main  # pylint: disable=g-import-not-at-top
from ohl_tf import search  # pylint: disable=g-import-not-at-top

_POLICIES = flags.DEFINE_list("policies", ["ohl", "uniform", "cutout"], "Policies to compare.")


def harmful_mask():
  """bool [1296]: the ops (e1, e2) with e1 or e2 harmful."""
  harmful = np.zeros(augment.NUM_ELEMENTS, bool)
  harmful[list(datasets.HARMFUL_ELEMENTS)] = True
  return (harmful[:, None] | harmful[None, :]).reshape(-1)


def uniform_harmful_share():
  return harmful_mask().mean()


class RewardAnalysis:
  """Collects, per outer step, corr(harmful share of a trajectory's ops, its reward)."""

  def __init__(self):
    self.correlations = []
    self.share_spreads = []

  def __call__(self, step):
    counts = np.asarray(step["op_counts"], np.float64)
    shares = counts[:, harmful_mask()].sum(1) / np.maximum(counts.sum(1), 1)
    scores = np.asarray(step["scores"], np.float64)
    self.share_spreads.append(shares.std())
    if shares.std() > 0 and scores.std() > 0:
      self.correlations.append(np.corrcoef(shares, scores)[0, 1])


def run_policy(policy_name, model_dir):
  """One run from the quickstart flagfile's settings (and this command's overrides)."""
  config = ohl_main.config_from_flags()
  config = search.dataclasses.replace(config, policy=policy_name, model_dir=model_dir,
                                      overwrite=True)
  analysis = RewardAnalysis()
  results = search.run(config, on_outer_step=analysis)
  exported = json.loads(pathlib.Path(model_dir, "policy.json").read_text())
  return config, results, np.array(exported["probabilities"]).reshape(-1), analysis


def report(config, runs):
  uniform = uniform_harmful_share()
  print(f"\npolicy_learning, {datetime.date.today()}, {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} cores, TensorFlow {tf.__version__}")
  print(f"  synthetic data, {config.model}, {config.trajectories} trajectories, {config.epochs} "
        f"epochs, train_subset={config.train_subset}, I={config.inner_steps or 'one epoch'}, "
        f"reward={config.reward}, seed={config.seed}")
  print(f"  {'policy':8s} {'test acc':>8s} {'p(harmful pairs)':>17s} {'vs uniform':>10s}")
  for name, (_, results, probs, _) in runs.items():
    share = probs[harmful_mask()].sum()
    print(f"  {name:8s} {results['test_accuracy']:8.4f} {share:17.4f} {share / uniform:9.3f}x")
  if "ohl" in runs:
    probs, analysis = runs["ohl"][2], runs["ohl"][3]
    matrix = probs.reshape(36, 36)
    marginals = 0.5 * (matrix.sum(0) + matrix.sum(1))
    print("  ohl harmful element marginals vs 1/36: " + ", ".join(
        f"{augment.ELEMENTS[e].name}({augment.ELEMENTS[e].magnitude}) "
        f"{marginals[e] * 36:.3f}x" for e in datasets.HARMFUL_ELEMENTS))
    correlations = np.array(analysis.correlations)
    print(f"  why: corr(harmful share, reward) over {len(correlations)} outer steps: mean "
          f"{correlations.mean():+.3f} (sd {correlations.std():.3f}; negative = harmful ops "
          f"cost reward); spread of the harmful share across trajectories: mean sd "
          f"{np.mean(analysis.share_spreads):.4f} around {uniform:.4f}")


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as root:
    runs = {name: run_policy(name, os.path.join(root, name)) for name in _POLICIES.value}
  report(next(iter(runs.values()))[0], runs)


if __name__ == "__main__":
  ohl_main.define_flags()
  app.run(main, argv=ohl_main.with_default_flagfile(sys.argv))
