r"""Test error where augmentation matters: few real CIFAR-10 images per class, long training.

From ../shared/data/cifar10-reduced (real CIFAR-10 images with their own labels) each seed takes
`--per_class` training and `--val_per_class` validation images per class; every other image is
the test set. At one budget (resnet8, `--epochs` passes, one outer step per epoch) it trains, as
`python -m ohl_tf.main` would:
  * the baselines with one network: none, cutout, autoaugment, uniform;
  * uniform with N trajectories: best-of-N selection alone lowers the error, so OHL must be
    compared with it at equal N, not with uniform at N = 1;
  * ohl with N trajectories and each --estimator;
and reports the test error of each, mean ± standard error over the seeds, and its wall time.

  python benchmarks/augmentation_accuracy.py                     # 3 seeds, ~40 min on 2 cores
  python benchmarks/augmentation_accuracy.py --seeds=0 --per_class=20 --epochs=10   # a smoke run

Every flag of `ohl_tf.main` is accepted; this script's defaults (`_DEFAULTS`) replace its general
ones.
"""

import dataclasses
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
from PIL import Image
import tensorflow as tf

_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT))
sys.path.insert(0, str(_ROOT / "benchmarks"))

import known_answer  # pylint: disable=g-import-not-at-top,wrong-import-position
from reporting import mean_se  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import policy  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import run_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from ohl_tf import search  # pylint: disable=g-import-not-at-top,wrong-import-position

# One outer step per epoch; the estimators' settings are the quick run's (flags/quickstart.cfg).
_DEFAULTS = dict(model="resnet8", trajectories=4, epochs=50, inner_steps=0, batch_size=50,
                 lr=0.1, cutout=16, reward="loss", es_sigma=2.0, theta_lr=0.5,
                 eval_batch_size=500)

_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; each draws its own split.")
_PER_CLASS = flags.DEFINE_integer("per_class", 50, "Training images per class.")
_VAL_PER_CLASS = flags.DEFINE_integer("val_per_class", 20, "Validation images per class.")
_ESTIMATORS = flags.DEFINE_list("estimators", list(policy.ESTIMATORS), "ohl's estimators.")
_RESULTS_JSON = flags.DEFINE_string("results_json", None, "Also write every run's figures here.")

# (label, --policy, trajectories: 1 or the run's N, estimator)
_BASELINES = (("none", "none", 1), ("cutout", "cutout", 1), ("autoaugment", "autoaugment", 1),
              ("uniform N=1", "uniform", 1), ("uniform N", "uniform", None))


def load_labelled(data_dir=known_answer.DEFAULT_DATA_DIR):
  """The real images with their CIFAR-10 labels: (uint8 [N,32,32,3], int [N], class names)."""
  train = pathlib.Path(data_dir) / "train"
  if not train.is_dir():
    sys.exit(f"{train} not found: this benchmark needs the real CIFAR-10 images of "
             f"../shared/data/cifar10-reduced (or set {known_answer.DATA_ENV}).")
  names = sorted(p.name for p in train.iterdir() if p.is_dir())
  paths = [(p, c) for c, name in enumerate(names) for p in sorted((train / name).glob("*.png"))]
  images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p, _ in paths])
  return images, np.array([c for _, c in paths]), names


def write_split(root, images, labels, names, train_per_class, seed):
  """ROOT/train: `train_per_class` images per class (training and validation); ROOT/test: the
  rest, so that `folder:ROOT` tests on every image the run never saw."""
  rng = np.random.default_rng(seed)
  chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), train_per_class,
                                      replace=False) for c in range(len(names))])
  in_train = np.zeros(len(labels), bool)
  in_train[chosen] = True
  for i, (image, label) in enumerate(zip(images, labels)):
    folder = pathlib.Path(root, "train" if in_train[i] else "test", names[label])
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{i:04d}.png")
  return int(in_train.sum()), int((~in_train).sum())


def configurations(trajectories, estimators):
  runs = [(label, spec, n or trajectories, "reinforce") for label, spec, n in _BASELINES]
  return runs + [(f"ohl {e}", "ohl", trajectories, e) for e in estimators]


def main(argv):
  del argv
  seeds = [int(s) for s in _SEEDS.value]
  images, labels, names = load_labelled()
  base = ohl_run_config.from_flags()
  errors, walls = {}, {}
  with tempfile.TemporaryDirectory() as root:
    for seed in seeds:
      data = os.path.join(root, f"data_{seed}")
      num_train, num_test = write_split(data, images, labels, names,
                                        _PER_CLASS.value + _VAL_PER_CLASS.value, seed)
      for label, spec, n, estimator in configurations(base.trajectories, _ESTIMATORS.value):
        config = dataclasses.replace(
            base, dataset=f"folder:{data}", val_size=_VAL_PER_CLASS.value * len(names),
            policy=spec, trajectories=n, estimator=estimator, seed=seed, overwrite=True,
            model_dir=os.path.join(root, f"{label.replace(' ', '_')}_{seed}"))
        results = search.run(config)
        errors.setdefault(label, []).append(1.0 - results["test_accuracy"])
        walls.setdefault(label, []).append(results["wall_time_s"])
        print(f"  {label:16s} seed {seed}: test error {errors[label][-1]:.4f} "
              f"({results['wall_time_s']:.0f} s)", flush=True)
  print(f"\naugmentation_accuracy, {datetime.date.today()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"TensorFlow {tf.__version__}")
  print(f"  real CIFAR-10 labels: {_PER_CLASS.value} training + {_VAL_PER_CLASS.value} "
        f"validation images per class ({num_train} in all), tested on the other {num_test}; "
        f"{base.model}, {base.epochs} epochs, batch {base.batch_size}, lr {base.lr}, cutout "
        f"{base.cutout}, N={base.trajectories}, reward={base.reward}, theta_lr={base.theta_lr}, "
        f"es_sigma={base.es_sigma}; seeds {', '.join(map(str, seeds))} (mean ± standard error)")
  print(f"  {'policy':16s} {'test error':>15s} {'wall s':>7s}")
  for label, values in errors.items():
    print(f"  {label:16s} {mean_se(values):>15s} {np.mean(walls[label]):7.0f}")
  if _RESULTS_JSON.value:
    pathlib.Path(_RESULTS_JSON.value).write_text(json.dumps(
        {"config": search.dataclasses.asdict(base), "seeds": seeds, "test_error": errors,
         "wall_time_s": walls}, indent=1))


if __name__ == "__main__":
  ohl_run_config.define_flags()
  for flag_name, value in _DEFAULTS.items():
    flags.FLAGS.set_default(flag_name, value)
  app.run(main)
