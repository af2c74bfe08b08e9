r"""Test error where augmentation pays, and how much learned policies agree across seeds.

The task: real CIFAR-10 images of ../shared/data/cifar10-reduced with their own labels. Each
seed draws `--per_class` images per class (the trainer holds `--val_per_class` of them out for
validation, seeded by the same seed), and every other image (3,660 at 100 per class) is the test
set, which no run sees. Every row trains through `python -m ohl_tf.main` exactly as a user would
(one process per run, `folder:` data), at one budget (`_BUDGET`: resnet8, 80 epochs, one outer
step per epoch, batch 64, lr 0.05, Cutout 16).

Each finished run appends one JSON line to `--records` (so an interrupted benchmark keeps what it
ran, and a rerun skips runs already recorded); `--report` prints, per row, the test error as mean
± standard error over the seeds, the wall time, and for rows that learn or keep a policy the
element marginals' mean pairwise Spearman rank correlation across seeds (of p_θ and of the
lineage, what the final network trained on), and the difference from the `--paired_with` row
(default `none`), seed by seed on the same images, as mean ± standard error. Each seed draws its
own images, so that agreement mixes which images a policy is learned from with the training's
own randomness; `--data_seed` gives every seed the images (training, validation and test) of one
seed, so that the seeds differ only in the training's randomness. The equal-compute row
`best of N <row>` picks, per seed, the run with the best validation accuracy among N runs of
that fixed-policy row (seeds `seed`, `seed + 1000`, ...; each run holds out its own validation
images from the same training images, as N independent runs of a user would).

  python benchmarks/augmentation_accuracy.py --rows=none,cutout,autoaugment --seeds=0,1,2
  python benchmarks/augmentation_accuracy.py --rows=ohl --row_flags='ohl=--estimator=element_es'
  python benchmarks/augmentation_accuracy.py --report
  python benchmarks/augmentation_accuracy.py --report --paired_with='none r20'
  python benchmarks/augmentation_accuracy.py --rows=ohl --data_seed=0 --records=same.jsonl
  python benchmarks/augmentation_accuracy.py --rows=none --seeds=0 --epochs=2   # a smoke run
"""

import datetime
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np
from PIL import Image

_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT / "benchmarks"))
sys.path.insert(0, str(_ROOT))
from ohl_tf.datasets import known_answer  # pylint: disable=g-import-not-at-top,wrong-import-position
import accuracy_rows  # pylint: disable=g-import-not-at-top,wrong-import-position
import reporting  # pylint: disable=g-import-not-at-top,wrong-import-position


# The trainer's flags of every run (the regime: a small task where augmentation pays).
_BUDGET = ("--model=resnet8", "--inner_steps=0", "--batch_size=64", "--lr=0.05",
           "--weight_decay=5e-4", "--cutout=16", "--eval_batch_size=500")


_ROWS = flags.DEFINE_list("rows", ["none", "cutout", "autoaugment", "randaugment", "uniform"],
                          "Rows to run (labels of `accuracy_rows.known`; 'uniform N=4', 'best of 4 "
                          "trivialaugment', ... for N = --trajectories).")
_ROW_FLAGS = flags.DEFINE_multi_string(
    "row_flags", [], "LABEL=FLAGS: extra trainer flags (space-separated) for a row, e.g. "
    "'ohl=--flagfile=flags/ohl_recommended.cfg'; also makes a new row LABEL from a known one "
    "when written NEW<known-label=FLAGS, e.g. 'ohl lr0.5<ohl=--theta_lr=0.5'; 'best of 4 X<best "
    "of 4 autoaugment=FLAGS' picks from runs recorded as row X, so the plain row X (made "
    "with the same flags) shares its first run.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds: each draws its own split.")
_PER_CLASS = flags.DEFINE_integer("per_class", 100, "Training + validation images per class.")
_VAL_PER_CLASS = flags.DEFINE_integer("val_per_class", 10, "Validation images per class.")
_EPOCHS = flags.DEFINE_integer("epochs", 80, "Epochs of every run (one outer step each).")
_DATA_SEED = flags.DEFINE_integer(
    "data_seed", None, "Train every seed on the images of this seed's split (its training, "
    "validation and test images), so that the seeds differ only in the training's own randomness "
    "and the agreement says whether a policy belongs to these images; the run of seed = "
    "data_seed is the run of the default. Default: every seed draws its own split.")
_TRAJECTORIES = flags.DEFINE_integer("trajectories", 4, "N of the rows that train N networks.")
_RECORDS = flags.DEFINE_string("records", "runs/augmentation_accuracy.jsonl",
                               "One JSON line per finished run; rerunning skips recorded runs.")
_WORK_DIR = flags.DEFINE_string("work_dir", None,
                                "Where the splits and run directories go (default: a temporary "
                                "directory, removed at the end).")
_REPORT = flags.DEFINE_bool("report", False, "Only print the table of --records.")
_PAIRED_WITH = flags.DEFINE_string(
    "paired_with", "none", "The row each row's test error is paired with, seed by seed on the "
    "same images (the table's last column: mean ± standard error of the differences); a row "
    "not in the records leaves the column out.")


def _requested_rows():
  """The rows of --rows with --row_flags applied, in --rows' order."""
  try:
    return accuracy_rows.requested(_ROWS.value, _ROW_FLAGS.value, _TRAJECTORIES.value)
  except ValueError as error:
    sys.exit(str(error))


def load_labelled(data_dir=known_answer.DEFAULT_DATA_DIR):
  """The real images with their CIFAR-10 labels: (uint8 [N,32,32,3], int [N], class names)."""
  train = pathlib.Path(data_dir) / "train"
  if not train.is_dir():
    sys.exit(f"{train} not found: this benchmark needs the real CIFAR-10 images (env "
             f"{known_answer.DATA_ENV}).")
  names = sorted(p.name for p in train.iterdir() if p.is_dir())
  paths = [(p, c) for c, name in enumerate(names) for p in sorted((train / name).glob("*.png"))]
  images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p, _ in paths])
  return images, np.array([c for _, c in paths]), names


def write_split(root, images, labels, names, per_class, seed):
  """ROOT/train: `per_class` images per class; ROOT/test: all the others."""
  rng = np.random.default_rng(seed)
  chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                           for c in range(len(names))])
  in_train = np.zeros(len(labels), bool)
  in_train[chosen] = True
  for i, (image, label) in enumerate(zip(images, labels)):
    folder = pathlib.Path(root, "train" if in_train[i] else "test", names[label])
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{i:04d}.png")


def fix_validation(split_root, seed, root):
  """ROOT/{train,val,test} (links to split_root's files): the validation images the trainer holds
  out of split_root/train at --seed=`seed` in ROOT/val, so that every seed validates on them."""
  from ohl_tf.datasets import folder  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  listing = folder.list_folder(str(split_root))
  train, _, val, _ = folder.split_validation(listing, _VAL_PER_CLASS.value * 10, seed,
                                             f"folder:{split_root}")
  for split, paths in (("train", train), ("val", val), ("test", listing.test_paths)):
    for path in map(pathlib.Path, paths):
      (root / split / path.parent.name).mkdir(parents=True, exist_ok=True)
      os.link(path, root / split / path.parent.name / path.name)


def _data_root(work_dir, seed, images, labels, names):
  """The folder of `seed`'s runs, written on first use: its own split, or with --data_seed the
  data seed's split with the validation images fixed (`fix_validation`)."""
  split_seed = seed if _DATA_SEED.value is None else _DATA_SEED.value
  split_root = pathlib.Path(work_dir, f"data_{split_seed}_{_PER_CLASS.value}")
  if not split_root.exists():
    write_split(split_root, images, labels, names, _PER_CLASS.value, split_seed)
  if _DATA_SEED.value is None:
    return split_root
  root = pathlib.Path(f"{split_root}_val{_VAL_PER_CLASS.value}_fixed")
  if not root.exists():
    fix_validation(split_root, split_seed, root)
  return root


def _run_key(row_label, flags_, seed):
  same_data = [] if _DATA_SEED.value is None else [f"data_seed={_DATA_SEED.value}"]
  return json.dumps([row_label, list(flags_), seed, _PER_CLASS.value, _VAL_PER_CLASS.value,
                     _EPOCHS.value, *same_data])


def train(data_root, run_flags, seed, model_dir):
  """Runs `python -m ohl_tf.main`; returns its results.json and policy.json (or None)."""
  command = [sys.executable, "-m", "ohl_tf.main", f"--dataset=folder:{data_root}", *_BUDGET,
             f"--epochs={_EPOCHS.value}", f"--val_size={_VAL_PER_CLASS.value * 10}",
             f"--seed={seed}", f"--model_dir={model_dir}", "--overwrite", *run_flags]
  subprocess.run(command, cwd=_ROOT, check=True, stdout=subprocess.DEVNULL)
  results = json.loads(pathlib.Path(model_dir, "results.json").read_text())
  policy_path = pathlib.Path(model_dir, "policy.json")
  policy = json.loads(policy_path.read_text()) if policy_path.exists() else None
  return results, policy


def run_rows(selected, seeds, work_dir, records_path):
  """Trains every (row, seed, pick) not yet in `records_path`, appending each as it ends."""
  done = set()
  if records_path.exists():
    done = {json.loads(line)["key"] for line in records_path.read_text().splitlines() if line}
  images, labels, names = load_labelled()
  for seed in seeds:
    data_root = _data_root(work_dir, seed, images, labels, names)
    for row in selected:
      for pick in range(max(row.picks_from, 1)):
        run_seed = seed + 1000 * pick
        key = _run_key(row.recorded_as, row.flags, run_seed)
        if key in done:
          continue
        model_dir = pathlib.Path(work_dir, "run_" + hashlib.sha1(key.encode()).hexdigest()[:12])
        results, policy = train(data_root, row.flags, run_seed, model_dir)
        record = {"key": key, "row": row.recorded_as, "flags": list(row.flags), "seed": seed,
                  "run_seed": run_seed, "data_seed": _DATA_SEED.value,
                  "test_error": 1.0 - results["test_accuracy"],
                  "best_val_accuracy": results["best_val_accuracy"],
                  "wall_time_s": results["wall_time_s"], "finished": str(datetime.datetime.now(
                      datetime.timezone.utc))}
        if policy is not None:
          record["marginals"] = reporting.element_marginals(policy["probabilities"]).tolist()
          if policy.get("lineage"):
            record["lineage_marginals"] = reporting.element_marginals(
                policy["lineage"]["probabilities"]).tolist()
        with records_path.open("a") as file:
          file.write(json.dumps(record) + "\n")
        done.add(key)
        print(f"{row.recorded_as:28s} seed {run_seed:5d}: test error {record['test_error']:.4f} "
              f"(val {record['best_val_accuracy']:.3f}, {record['wall_time_s']:.0f} s)",
              flush=True)


def report(records_path, trajectories, paired_with=None):
  """Prints the table of every row in the records, and the best-of-N rows they allow; with
  `paired_with`, a row's label, each row's differences from it seed by seed."""
  records = [json.loads(line) for line in records_path.read_text().splitlines() if line]
  by_row = {}
  for record in records:
    if record["run_seed"] == record["seed"]:
      by_row.setdefault(record["row"], []).append(record)
  for label in list(by_row):
    best = _best_of([r for r in records if r["row"] == label], trajectories)
    if best:
      by_row[f"best of {trajectories} {label}"] = best
  errors = {label: {r["seed"]: 100 * r["test_error"] for r in group}
            for label, group in by_row.items()}
  baseline = errors.get(paired_with)
  print(f"augmentation_accuracy, {datetime.date.today()}, {reporting.machine()}")
  width = max([28, *map(len, by_row)])  # the longest label, so that the columns line up
  print(f"  {'row':{width}s} {'seeds':>5s} {'test error':>17s} {'wall s':>7s} "
        f"{'rank corr p':>11s} {'rank corr lineage':>17s}" +
        (f" {'paired with ' + paired_with:>22s}" if baseline else ""))
  for label, group in by_row.items():
    agreement = lambda key: reporting.mean_pairwise_spearman(  # pylint: disable=cell-var-from-loop
        [r[key] for r in group if key in r])
    rank_p, rank_l = (_figure(agreement(key)) for key in ("marginals", "lineage_marginals"))
    differences = (reporting.paired_differences(errors[label], baseline)
                   if baseline and label != paired_with else [])
    paired = f" {reporting.mean_se(differences):>22s}" if differences else ""
    print(f"  {label:{width}s} {len(errors[label]):5d} "
          f"{reporting.mean_se(list(errors[label].values())):>17s} "
          f"{np.mean([r['wall_time_s'] for r in group]):7.0f} {rank_p:>11s} {rank_l:>17s}"
          + paired)


def _figure(value):
  """A rank correlation for the table: '–' where it is undefined (no policy, one seed, a fixed
  uniform policy)."""
  return "–" if np.isnan(value) else f"{value:.2f}"


def _best_of(candidates, trajectories):
  """Per seed with >= `trajectories` runs, the one of its first `trajectories` with the best
  validation accuracy."""
  best = []
  for seed in sorted({r["seed"] for r in candidates}):
    runs = [r for r in candidates if r["seed"] == seed and
            (r["run_seed"] - seed) // 1000 < trajectories]
    if len(runs) >= trajectories:
      best.append(max(runs, key=lambda r: r["best_val_accuracy"]))
  return best


def main(argv):
  del argv
  records_path = pathlib.Path(_RECORDS.value)
  records_path.parent.mkdir(parents=True, exist_ok=True)
  if not _REPORT.value:
    selected, seeds = _requested_rows(), [int(s) for s in _SEEDS.value]
    if _WORK_DIR.value:
      run_rows(selected, seeds, _WORK_DIR.value, records_path)
    else:
      with tempfile.TemporaryDirectory() as work_dir:
        run_rows(selected, seeds, work_dir, records_path)
  report(records_path, _TRAJECTORIES.value, _PAIRED_WITH.value)


if __name__ == "__main__":
  app.run(main)
