r"""Writes the known answer on real images: CIFAR-10 relabelled by dominant colour.

The data, the labels and the harm of each element are `ohl_tf.datasets.known_answer` (its
docstring explains the property and why it suits); this script measures them and writes the
folder dataset:

  python benchmarks/known_answer.py --out=/tmp/known_answer     # ~15 s on 2 cores
  python -m ohl_tf.main --dataset=folder:/tmp/known_answer ...  # then train on it

--out receives train/<class>/*.png and test/<class>/*.png (the layout of `folder:ROOT`) and
harmful.json: the property, the classes, the per-element table, the threshold, the harmful
elements and the probability the uniform policy gives the operations holding one of them.
"""

import os
import pathlib
import sys

from absl import app
from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # ohl_tf.augment imports TensorFlow

# Run as a plain script, sys.path[0] is benchmarks/: make `ohl_tf` importable from the root.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from ohl_tf.datasets import known_answer  # pylint: disable=wrong-import-position


def define_flags():
  """The script's flags."""
  flags.DEFINE_string(
      "data_dir", str(known_answer.DEFAULT_DATA_DIR),
      f"Folder with train/<class>/*.png: the real CIFAR-10 images (env {known_answer.DATA_ENV} "
      "overrides the default).")
  flags.DEFINE_string("out", None, "Where to write train/, test/ and harmful.json.")
  flags.DEFINE_float("margin", known_answer.MARGIN, "Minimum gap between the two largest channel "
                     "means (0..255) for an image to be kept.")
  flags.DEFINE_float("threshold", known_answer.HARM_THRESHOLD, "An element is harmful when the "
                     "share of labels it changes, averaged over its signs, is >= this.")
  flags.DEFINE_float("test_fraction", 0.2, "Share of each class held out as test/.")
  flags.DEFINE_integer("seed", 0, "Seed of the class balancing and of the test split.")
  flags.DEFINE_bool("balance", True, "Subsample every class to the smallest one's count (else "
                    "keep every crisp image: more images, 57% of them red).")
  flags.DEFINE_bool("overwrite", False, "Replace an existing --out/train and --out/test.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  if not f.out:
    raise app.UsageError("--out is required: the folder to write the dataset and harmful.json to.")
  try:
    known_answer.prepare(f.out, f.data_dir, f.margin, f.threshold, f.test_fraction, f.seed,
                         f.balance, f.overwrite)
  except (FileExistsError, FileNotFoundError) as error:
    sys.exit(str(error))


if __name__ == "__main__":
  define_flags()
  app.run(main)
