r"""Trains a classifier and learns its augmentation policy in one run (OHL-Auto-Aug).

  python -m ohl_tf.main --flagfile=flags/cifar_wrn.cfg [--flag=value ...]

Without any flag it runs flags/quickstart.cfg (synthetic data, a small model, 4 trajectories,
a few minutes on a laptop CPU). Any other run starts from the general defaults that each flag's
help states (the paper's where it has one), then its --flagfile, then the command line; nothing
of the quick run leaks into it.
Watch it with `tensorboard --logdir=<model_dir>/logs`. The terminal shows the configuration,
one line per outer step and the results; --verbosity=1 brings TensorFlow's logs back.
"""

import time

_STARTED = time.monotonic()  # the terminal reports the time from here to the first training step

# First, before anything imports TensorFlow: its C++ libraries log as they load, at the level
# TF_CPP_MIN_LOG_LEVEL held then (ohl_tf/console.py).
from ohl_tf import console  # pylint: disable=g-import-not-at-top,wrong-import-position

console.silence_tensorflow()

# pylint: disable=g-import-not-at-top,wrong-import-position
import pathlib
import sys

from absl import app
from absl import flags

from ohl_tf import cluster
from ohl_tf import devices
from ohl_tf import population
from ohl_tf import run_config
from ohl_tf import search

_FLAGS_DIR = pathlib.Path(__file__).resolve().parents[1] / "flags"
QUICKSTART = _FLAGS_DIR / "quickstart.cfg"


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
  devices.warn_if_gpu_unused()
  try:
    results = search.run(run_config.from_flags(), started_at=_STARTED)
  except (ValueError, OSError, population.NonFiniteLossError, cluster.WorkerLostError) as error:
    print(f"error: {error}", file=sys.stderr)  # one line, whatever the --verbosity
    sys.exit(1)
  if results is not None:  # None: a worker of a cluster but the chief, which reports
    print(search.results_line(results))


if __name__ == "__main__":
  run_config.define_flags()
  # The flags are defined in run_config, so absl's --help (the main module's key flags) would
  # list none of them: adopting them as main's key flags shows them there; --helpfull lists all.
  flags.adopt_module_key_flags(run_config)
  app.run(main, argv=with_default_flagfile(sys.argv))
