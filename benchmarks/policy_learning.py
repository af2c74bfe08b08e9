r"""Does θ learn? Each estimator on real images with a known answer, against the uniform policy.

The task (ohl_tf/datasets/known_answer.py): the real CIFAR-10 images of
../shared/data/cifar10-reduced relabelled by their dominant colour, which five elements measurably
destroy (Solarize 26/102/179, Equalize, Invert: each changes ≥ 41% of the labels, every other
element ≤ 13%). Under the uniform policy the operations holding one of them get
1 − (31/36)² = 0.2585 of the probability; a search that learns puts less there.

For every seed, at one fixed budget, this runs `--policy=uniform` and `--policy=ohl` with each
`--estimator`, through `ohl_tf.search.run` as `python -m ohl_tf.main` would, and reports per
estimator, as mean ± standard error over the seeds:
  * harm: p_θ's mass on the harmful pairs, as a multiple of uniform's (1.00 = nothing learned);
  * lineage: the harmful share of the operations the surviving network trained on (the winners'
    batches, see docs/run_directory.md, policy.json), as a multiple of uniform's;
  * drift: total variation between p_θ restricted to the innocent pairs and uniform over them
    (collateral change where nothing should change; 0 for uniform);
  * best validation and test accuracy, and wall time;
  * corr: per outer step, the correlation across trajectories between a trajectory's share of
    harmful operations and its reward, averaged over the run (how much of the reward signal
    the policy gradient can credit to the harmful operations; negative = they cost reward);
  * agreement: the mean pairwise Spearman correlation across the seeds of p_θ's element
    marginals and of the lineage's (1 = every seed ranks the 36 elements alike). Only the five
    harmful elements carry the answer, so random ranks among the other 31 keep it below 1.

  python benchmarks/policy_learning.py                          # 3 seeds, ~35 min on 2 cores
  python benchmarks/policy_learning.py --seeds=0 --runs=element_es --es_sigma=2

Every flag of `ohl_tf.main` is accepted; this script's own defaults (below, `_DEFAULTS`) replace
its general ones, and `--data_root` reuses a prepared known-answer folder.
"""

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT))

import reporting  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import augment  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import estimators  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import run_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import search  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf.datasets import known_answer  # pylint: disable=wrong-import-position

# The budget: resnet8, 4 trajectories, 8 epochs of the ~2,300 training images left after the
# test and validation splits, periods of I = 8 steps of 64 (35 outer steps), lr 0.1; the
# estimators' settings are the quick run's (flags/quickstart.cfg).
_DEFAULTS = dict(model="resnet8", trajectories=4, epochs=8, inner_steps=8, batch_size=64, lr=0.1,
                 val_size=500, cutout=16, reward="loss", es_sigma=2.0, theta_lr=0.5)

_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; every policy runs once per seed.")
_RUNS = flags.DEFINE_list("runs", ["uniform", *estimators.names()],
                          "What to run per seed: 'uniform' and/or estimators of --policy=ohl.")
_DATA_ROOT = flags.DEFINE_string("data_root", None,
                                 "A folder prepared by benchmarks/known_answer.py (default: "
                                 "prepare one in a temporary folder).")
_RESULTS_JSON = flags.DEFINE_string("results_json", None, "Also write every run's figures here.")


def harmful_operations(harmful_elements):
  """bool [1296]: the ops (e1, e2) with e1 or e2 harmful."""
  harmful = np.zeros(augment.NUM_ELEMENTS, bool)
  harmful[list(harmful_elements)] = True
  return (harmful[:, None] | harmful[None, :]).reshape(-1)


def innocent_drift(probs, harmful):
  """Total variation between p on the innocent ops (renormalised) and uniform over them."""
  innocent = probs[~harmful] / probs[~harmful].sum()
  return 0.5 * np.abs(innocent - 1.0 / innocent.size).sum()


class RewardSignal:
  """Per outer step, corr(a trajectory's harmful share, its score) across the trajectories:
  how much of the reward the harmful operations explain (negative: they cost reward)."""

  def __init__(self, harmful):
    self.harmful = harmful
    self.correlations = []

  def __call__(self, step):
    counts = np.asarray(step["op_counts"], np.float64)
    shares = counts[:, self.harmful].sum(1) / np.maximum(counts.sum(1), 1)
    scores = np.asarray(step["scores"], np.float64)
    if shares.std() > 0 and scores.std() > 0:
      self.correlations.append(np.corrcoef(shares, scores)[0, 1])


def measure(model_dir, results, harmful):
  """The figures of one finished run, from its policy.json and results."""
  exported = json.loads(pathlib.Path(model_dir, "policy.json").read_text())
  probs = np.reshape(exported["probabilities"], -1)
  lineage = np.reshape(exported["lineage"]["probabilities"], -1)
  return {"marginals": reporting.element_marginals(exported["probabilities"]).tolist(),
          "lineage_marginals": reporting.element_marginals(
              exported["lineage"]["probabilities"]).tolist(),
          "harm": probs[harmful].sum() / harmful.mean(),
          "lineage": lineage[harmful].sum() / harmful.mean(),
          "drift": innocent_drift(probs, harmful),
          "val": results["best_val_accuracy"], "test": results["test_accuracy"],
          "wall_s": results["wall_time_s"]}


def run_one(base, name, seed, root, harmful):
  policy_name, estimator = ("uniform", "reinforce") if name == "uniform" else ("ohl", name)
  model_dir = os.path.join(root, f"{name}_{seed}")
  config = dataclasses.replace(base, policy=policy_name, estimator=estimator, seed=seed,
                                      model_dir=model_dir, overwrite=True)
  start = time.time()
  signal = RewardSignal(harmful)
  results = search.run(config, on_outer_step=signal)
  figures = measure(model_dir, results, harmful)
  figures["signal"] = float(np.mean(signal.correlations)) if signal.correlations else 0.0
  print(f"  {name:10s} seed {seed}: harm {figures['harm']:.3f}x, lineage "
        f"{figures['lineage']:.3f}x, drift {figures['drift']:.3f}, test {figures['test']:.4f}, "
        f"corr(harmful share, reward) {figures['signal']:+.3f} "
        f"({time.time() - start:.0f} s)", flush=True)
  return figures


def report(base, runs, task, seeds):
  print(f"\npolicy_learning, {datetime.date.today()}, {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} cores, TensorFlow {tf.__version__}")
  print(f"  known answer: {task['property']}; harmful elements {task['harmful_elements']} "
        f"(uniform mass {task['uniform_harmful_mass']:.4f})")
  print(f"  {base.model}, N={base.trajectories}, {base.epochs} epochs, I={base.inner_steps}, "
        f"batch {base.batch_size}, lr {base.lr}, val {base.val_size}, reward={base.reward}, "
        f"es_sigma={base.es_sigma}, theta_lr={base.theta_lr}; seeds {', '.join(map(str, seeds))}"
        " (mean ± standard error)")
  print(f"  {'policy':12s} {'harm (x unif)':>15s} {'lineage (x unif)':>17s} "
        f"{'drift (TV)':>15s} {'best val':>15s} {'test acc':>15s} {'corr':>16s} "
        f"{'wall s':>7s} {'agreement p/lineage':>19s}")
  for name, figures in runs.items():
    column = lambda key: reporting.mean_se(  # pylint: disable=cell-var-from-loop
        [f[key] for f in figures])
    label = "uniform" if name == "uniform" else f"ohl {name}"
    print(f"  {label:12s} {column('harm'):>15s} {column('lineage'):>17s} {column('drift'):>15s} "
          f"{column('val'):>15s} {column('test'):>15s} {column('signal'):>16s} "
          f"{np.mean([f['wall_s'] for f in figures]):7.0f} "
          f"{agreement(figures, 'marginals'):>9.2f} / "
          f"{agreement(figures, 'lineage_marginals'):.2f}")


def agreement(figures, key):
  """The mean pairwise rank correlation across seeds of the runs' element marginals `key`."""
  return reporting.mean_pairwise_spearman([f[key] for f in figures])


def main(argv):
  del argv
  seeds = [int(s) for s in _SEEDS.value]
  with tempfile.TemporaryDirectory() as root:
    data_root = _DATA_ROOT.value
    if not data_root:  # every crisp image (~3,300): a test split of 15%, 500 for validation
      data_root = os.path.join(root, "data")
      known_answer.prepare(data_root, test_fraction=0.15, balance=False)
    task = json.loads(pathlib.Path(data_root, "harmful.json").read_text())
    harmful = harmful_operations(task["harmful_elements"])
    base = dataclasses.replace(run_config.from_flags(),
                                      dataset=f"folder:{data_root}")
    runs = {}
    for seed in seeds:
      for name in _RUNS.value:
        runs.setdefault(name, []).append(run_one(base, name, seed, root, harmful))
  report(base, runs, task, seeds)
  if _RESULTS_JSON.value:
    pathlib.Path(_RESULTS_JSON.value).write_text(json.dumps(
        {"config": dataclasses.asdict(base), "seeds": seeds, "task": task, "runs": runs},
        indent=1))


if __name__ == "__main__":
  run_config.define_flags()
  for flag_name, value in _DEFAULTS.items():
    flags.FLAGS.set_default(flag_name, value)
  app.run(main)
