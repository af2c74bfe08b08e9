r"""Table 2's columns at a CPU budget, on real CIFAR-10 images: every --policy, one command each.

Splits ../shared/data/cifar10-reduced (4,660 real CIFAR-10 training images) into a training
folder and a 1,000-image test folder (seeded, by symbolic links in a temporary directory), then
runs `python -m ohl_tf.main` once per policy with the same model, budget and seed, and prints
each run's results line and a table. The baselines train one network (--trajectories=1), as in
the paper; ohl and uniform train --trajectories networks.

This is a small-budget check that every column runs on real data through one pipeline, not a
reproduction of Table 2: its figures carry the noise of a 1,000-image test set (a standard error
of about 1.5 points at 70% accuracy).

  python benchmarks/policy_comparison.py                   # resnet8, 15 epochs: ~12 min, 2 cores
  python benchmarks/policy_comparison.py --policies=none,cutout --epochs=5
"""

import datetime
import os
import pathlib
import platform
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np

_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT))
from ohl_tf.datasets import known_answer  # pylint: disable=g-import-not-at-top,wrong-import-position

_POLICIES = flags.DEFINE_list(
    "policies",
    ["none", "cutout", "autoaugment", "randaugment", "trivialaugment", "uniform", "ohl"],
    "Policies to compare (any --policy value).")
_MODEL = flags.DEFINE_string("model", "resnet8", "Model of every run.")
_EPOCHS = flags.DEFINE_integer("epochs", 15, "Training epochs of every run.")
_TRAJECTORIES = flags.DEFINE_integer("trajectories", 4, "N of the ohl and uniform runs.")
_TEST_SIZE = flags.DEFINE_integer("test_size", 1000, "Images held out as the test folder.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the test split and of every run.")


def split_folder(source, destination, test_size, seed):
  """Links source/train/<class>/* into destination/{train,test}/<class>/, test_size for test."""
  paths = sorted(source.glob("train/*/*.png"))
  test = set(np.random.default_rng(seed).permutation(len(paths))[:test_size].tolist())
  for index, path in enumerate(paths):
    split = "test" if index in test else "train"
    target = destination / split / path.parent.name / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(path.resolve())


def run_policy(policy, data_root, model_dir):
  """The results line of one run of ohl_tf.main."""
  searches = policy in ("ohl", "uniform")
  command = [sys.executable, "-m", "ohl_tf.main", f"--dataset=folder:{data_root}",
             f"--model={_MODEL.value}", f"--policy={policy}", f"--epochs={_EPOCHS.value}",
             f"--trajectories={_TRAJECTORIES.value if searches else 1}", "--inner_steps=0",
             "--batch_size=128", "--lr=0.1", "--cutout=16", "--val_size=500",
             "--eval_batch_size=500", f"--seed={_SEED.value}", f"--model_dir={model_dir}"]
  result = subprocess.run(command, cwd=_ROOT, capture_output=True, text=True, check=False,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  if result.returncode:
    raise RuntimeError(f"--policy={policy} failed:\n{result.stderr[-3000:]}")
  return result.stdout.strip().splitlines()[-1]


def _field(line, name):
  return dict(item.split("=", 1) for item in line.split()[1:])[name]


def main(argv):
  del argv
  cifar10_reduced = known_answer.DEFAULT_DATA_DIR
  if not (cifar10_reduced / "train").is_dir():
    sys.exit(f"{cifar10_reduced}/train not found: this benchmark needs the real CIFAR-10 images "
             f"(env {known_answer.DATA_ENV}).")
  print(f"# {datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; {_MODEL.value}, {_EPOCHS.value} epochs, batch 128, seed "
        f"{_SEED.value}; train {4660 - _TEST_SIZE.value - 500} / val 500 / test "
        f"{_TEST_SIZE.value} real CIFAR-10 images")
  with tempfile.TemporaryDirectory() as workdir:
    data_root = pathlib.Path(workdir) / "cifar10-reduced-split"
    split_folder(cifar10_reduced, data_root, _TEST_SIZE.value, _SEED.value)
    lines = {}
    for policy in _POLICIES.value:
      lines[policy] = run_policy(policy, data_root, pathlib.Path(workdir) / policy)
      print(lines[policy], flush=True)
  print("\n| policy | trajectories | test error | wall time (s) |\n|---|---:|---:|---:|")
  for policy, line in lines.items():
    print(f"| {policy} | {_field(line, 'trajectories')} | {_field(line, 'test_error')} | "
          f"{_field(line, 'wall_time_s')} |")


if __name__ == "__main__":
  app.run(main)
