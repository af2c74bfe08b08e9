r"""Trains a classifier and learns its augmentation policy in one run (OHL-Auto-Aug).

  python -m ohl_tf.main --flagfile=flags/cifar_wrn.cfg [--flag=value ...]

Without any flag it runs flags/quickstart.cfg (synthetic data, a small model, 4 trajectories,
a few minutes on a laptop CPU). Any other run starts from the general defaults that each flag's
help states (the paper's where it has one), then its --flagfile, then the command line; nothing
of the quick run leaks into it.
Watch it with `tensorboard --logdir=<model_dir>/logs`. The terminal shows the configuration,
one line per outer step and the results; --verbosity=1 brings TensorFlow's logs back.
"""

# First, before anything imports TensorFlow: its C++ libraries log as they load, at the level
# TF_CPP_MIN_LOG_LEVEL held then (ohl_tf/console.py).
from ohl_tf import console

console.silence_tensorflow()

# pylint: disable=g-import-not-at-top,wrong-import-position
import pathlib
import sys

from absl import app
from absl import flags

from ohl_tf import policy
from ohl_tf import search

_FLAGS_DIR = pathlib.Path(__file__).resolve().parents[1] / "flags"
QUICKSTART = _FLAGS_DIR / "quickstart.cfg"
_DEFAULTS = search.Config()


def define_flags():
  """Defines the flags (all optional, with the defaults of `search.Config`)."""
  d = _DEFAULTS
  flags.DEFINE_string("dataset", d.dataset,
                      "cifar10 | cifar100 | svhn_cropped | imagenet2012 (tensorflow-datasets; "
                      "ImageNet needs its manual download in <data_dir>/downloads/manual) | "
                      "folder:ROOT (ROOT/train/<class>/<image>, optional ROOT/test/) | synthetic "
                      "(embedded, generated).")
  flags.DEFINE_string("data_dir", d.data_dir, "tensorflow-datasets data directory.")
  flags.DEFINE_integer("image_size", d.image_size,
                       "imagenet2012: side of the training and evaluation crops; folder: resize "
                       "every image to this square; 0 = the dataset's own (ImageNet 224).")
  flags.DEFINE_string("model", d.model, "Model name (see models.names()).")
  flags.DEFINE_string("policy", d.policy,
                      "ohl: learn θ | uniform: OHL ops with θ frozen at 0 | file:PATH: OHL ops "
                      "from a learned policy.json, fixed | autoaugment: the published AutoAugment "
                      "policy of the dataset | randaugment: keras-cv RandAugment | cutout: base + "
                      "Cutout | none: base preprocessing only (no Cutout).")
  flags.DEFINE_integer("trajectories", d.trajectories, "N, copies of the network.")
  flags.DEFINE_integer("epochs", d.epochs, "Training epochs.")
  flags.DEFINE_integer("inner_steps", d.inner_steps,
                       "I, inner steps per outer step; 0 = one epoch.")
  flags.DEFINE_integer("batch_size", d.batch_size, "Batch of one trajectory (all its replicas).")
  flags.DEFINE_float("lr", d.lr, "Peak learning rate (cosine decay to 0).")
  flags.DEFINE_float("momentum", d.momentum, "SGD momentum.")
  flags.DEFINE_bool("nesterov", d.nesterov, "Nesterov momentum.")
  flags.DEFINE_integer("warmup_epochs", d.warmup_epochs, "Linear warm-up epochs.")
  flags.DEFINE_float("warmup_lr", d.warmup_lr, "Learning rate at the start of the warm-up.")
  flags.DEFINE_float("weight_decay", d.weight_decay, "L2 weight decay.")
  flags.DEFINE_float("theta_lr", d.theta_lr, "Adam learning rate of θ (paper: 0.05).")
  flags.DEFINE_enum("reward", d.reward, search.REWARDS,
                    "What scores a trajectory: validation accuracy (paper) or minus the "
                    "validation cross-entropy (keeps ranking when accuracies tie).")
  flags.DEFINE_enum("estimator", d.estimator, policy.ESTIMATORS,
                    "How the outer step estimates θ's gradient: reinforce (the paper's eq. 6) | "
                    "pooled (eq. 6 pooled onto the 36 elements and spread back) | element_es "
                    "(trajectories explore antithetic element-level perturbations of θ; even "
                    "--trajectories). Only --policy=ohl learns θ.")
  flags.DEFINE_float("es_sigma", d.es_sigma,
                     "element_es: scale σ of the element perturbations θ_n = θ + σAε_n.")
  flags.DEFINE_integer("cutout", d.cutout, "Cutout square side (0 = off).")
  flags.DEFINE_integer("val_size", d.val_size, "Validation images held out of train.")
  flags.DEFINE_integer("train_subset", d.train_subset,
                       "Use only this many training images (0 = all), e.g. reduced CIFAR-10.")
  flags.DEFINE_integer("eval_batch_size", d.eval_batch_size, "Evaluation batch size.")
  flags.DEFINE_string("model_dir", d.model_dir, "Where the run lives; rerun to resume. Empty: "
                      "runs/<dataset>_<model>.")
  flags.DEFINE_integer("seed", d.seed, "Seed of every random choice of the run.")
  flags.DEFINE_bool("deterministic", d.deterministic,
                    "Deterministic kernels (tf.config.experimental.enable_op_determinism).")
  flags.DEFINE_integer("cpu_devices", d.cpu_devices,
                       "Split the CPU into this many logical devices (tests, no GPU).")
  flags.DEFINE_bool("overwrite", d.overwrite,
                    "Delete a run with another configuration found in --model_dir.")


def config_from_flags():
  names = [field.name for field in search.dataclasses.fields(search.Config)]
  return search.Config(**{name: flags.FLAGS[name].value for name in names})


def with_default_flagfile(argv):
  """argv of a bare `python -m ohl_tf.main`: the quick run (--flagfile=flags/quickstart.cfg).

  Any argument at all turns that off: a run with flags of its own starts from the general
  defaults, never from the quick run's demo settings (2,048 images, 4-step periods, ...).
  """
  return [argv[0], f"--flagfile={QUICKSTART}"] if len(argv) == 1 else argv


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  console.show_terminal()
  try:
    results = search.run(config_from_flags())
  except (ValueError, OSError, search.NonFiniteLossError) as error:
    print(f"error: {error}", file=sys.stderr)  # one line, whatever the --verbosity
    sys.exit(1)
  print(search.results_line(results))


if __name__ == "__main__":
  define_flags()
  app.run(main, argv=with_default_flagfile(sys.argv))
