"""A run's `--model_dir`: where each thing lives, the checkpoint's keys, and the start of a run.

The layout (docs/run_directory.md):

  config.json    the settings the run was started with (`start`)
  checkpoints/   θ, its Adam state, every trajectory, the counters and histories after every
                 outer step (`ohl_tf.checkpoints`)
  logs/          TensorBoard
  saved_model/, policy.json, results.json   the exports, at the end

The checkpoint is object-based: its keys are the names below (`OUTER_VARIABLES`, `trajectory_key`)
and `ohl_tf.report` reads them without building a model; renaming one would orphan every run
written before (tests/search_test.py pins them).
"""

import dataclasses
import json
import os
import shutil

from ohl_tf import checkpoints as checkpoints_lib
from ohl_tf import export
from ohl_tf import run_config

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
SAVED_MODEL = "saved_model"
POLICY = "policy.json"
RESULTS = "results.json"
# What a run writes into model_dir: what --overwrite deletes, and nothing else there.
ARTEFACTS = (CHECKPOINTS, LOGS, SAVED_MODEL, POLICY, RESULTS, CONFIG)

# The outer loop's own variables in the checkpoint, by name (beside each trajectory's).
THETA = "theta"
THETA_OPTIMIZER = "theta_optimizer"
OUTER_STEP = "outer_step"
THETA_HISTORY = "theta_history"
VAL_HISTORY = "val_history"
WALL_TIME = "wall_time"
LINEAGE = "lineage"  # absent from runs that predate the lineage record
OUTER_VARIABLES = (THETA, THETA_OPTIMIZER, OUTER_STEP, THETA_HISTORY, VAL_HISTORY, WALL_TIME,
                   LINEAGE)

# Settings that may change between a run and its resumption: where things are, how fast.
# Not --jit_compile, although it is about speed: XLA fuses and orders the float operations
# differently, so a resumed run that switched it would no longer replay the uninterrupted one
# bit for bit under --deterministic. Nor --precision, which changes the arithmetic (and, for
# mixed_float16, the optimizer's checkpointed variables). --augment_path, --augment_on and
# --folder_stream may: each choice gives the same bytes.
RESUMABLE_CHANGES = ("data_dir", "model_dir", "eval_batch_size", "cpu_devices", "overwrite",
                     "augment_path", "augment_on", "folder_stream", "figure_interval_secs",
                     "cluster", "cluster_timeout")


def path(model_dir, name):
  """model_dir/name, for one of the names of the layout (`CONFIG`, `CHECKPOINTS`, ...)."""
  return os.path.join(model_dir, name)


def trajectory_key(index):
  """The checkpoint's name of trajectory `index` (its `model` and `optimizer` below it)."""
  return f"trajectory_{index}"


def variable_key(name):
  """The key `tf.train.load_checkpoint` reads a checkpointed variable `name` under."""
  return f"{name}/.ATTRIBUTES/VARIABLE_VALUE"


def check(config):
  """Returns True when `model_dir` holds a run of this configuration to resume.

  Checkpoints that cannot be read are set aside first (`checkpoints.recover`): the run resumes
  from the newest intact one.

  Args:
    config: the run's `run_config.Config`.

  Returns:
    Whether the run resumes from a checkpoint.

  Raises:
    ValueError: it holds a run started with other settings, and --overwrite is not set.
    checkpoints.DamagedCheckpointError: it holds this run but no intact checkpoint, and
      --overwrite (which then starts the run afresh) is not set.
  """
  config_path = path(config.model_dir, CONFIG)
  if not os.path.exists(config_path):
    return False
  with open(config_path) as file:
    saved = json.load(file)
  wanted = dataclasses.asdict(config)
  defaults = dataclasses.asdict(run_config.Config())
  differing = sorted(key for key in set(saved) | set(wanted)
                     if key not in RESUMABLE_CHANGES
                     # A setting added after the run started has its default there.
                     and saved.get(key, defaults.get(key)) != wanted.get(key))
  if not differing:
    try:
      return checkpoints_lib.recover(path(config.model_dir, CHECKPOINTS)) is not None
    except checkpoints_lib.DamagedCheckpointError:
      if config.overwrite:
        return False
      raise
  if config.overwrite:
    return False
  details = "; ".join(f"--{k}: {saved.get(k, defaults.get(k))!r} there, "
                      f"{wanted.get(k)!r} now" for k in differing)
  raise ValueError(f"--model_dir={config.model_dir} holds a run with a different configuration "
                   f"({details}). Use another --model_dir, or --overwrite to delete that run.")


def start(config, resuming):
  """Writes config.json; a new run with --overwrite first deletes the old run's artefacts
  (and nothing else in the directory).

  Args:
    config: the run's `run_config.Config`.
    resuming: what `check` returned.

  Raises:
    checkpoints.WriteFailedError: config.json could not be written.
  """
  os.makedirs(config.model_dir, exist_ok=True)
  if config.overwrite and not resuming:
    for name in ARTEFACTS:
      artefact = path(config.model_dir, name)
      if os.path.isdir(artefact):
        shutil.rmtree(artefact)
      elif os.path.exists(artefact):
        os.remove(artefact)
  config_path = path(config.model_dir, CONFIG)
  try:
    export.write_json(config_path, dataclasses.asdict(config))
  except OSError as error:
    raise checkpoints_lib.write_failure(config_path, error, "resumes") from None
