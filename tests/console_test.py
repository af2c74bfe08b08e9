"""The run's terminal (ohl_tf/console.py): which of TensorFlow's log lines a run keeps, and the
lines it prints itself. The quiet end-to-end run is in main_test (test_quick_run_terminal)."""

import os
import subprocess
import sys

import pytest
from terminal_testing import environment
from terminal_testing import native_lines

from ohl_tf import augmentation_policies
from ohl_tf import console
from ohl_tf import schedule as schedule_lib
from ohl_tf import run_config

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------
# Which level, from the command line and the environment.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,expected", [
    ([], None),
    (["--verbosity=1"], 1),
    (["-v", "1"], 1),
    (["-v=2"], 2),
    (["--verbosity", "0"], 0),
    (["--model", "resnet8", "--epochs=1"], None),  # other flags, even with separate values
    (["--verbosity=loud"], None),  # app.run reports it
    (["--flagfile=/nonexistent.cfg"], None),  # idem
])
def test_requested_verbosity(argv, expected):
  assert console.requested_verbosity(["ohl_tf.main", *argv]) == expected


def test_requested_verbosity_reads_flagfiles(tmp_path):
  flagfile = tmp_path / "run.cfg"
  flagfile.write_text("--epochs=1\n--verbosity=1\n")
  assert console.requested_verbosity(["ohl_tf.main", f"--flagfile={flagfile}"]) == 1


@pytest.mark.parametrize("environ,verbosity,expected", [
    ({}, None, "3"),  # the quiet default
    ({}, 0, "3"),  # absl's INFO lines, not the C++ ones
    ({}, 1, None),  # everything: TensorFlow's default, 0
    ({"TF_CPP_MIN_LOG_LEVEL": "2"}, None, None),  # the user's choice stands
    ({"TF_CPP_MIN_LOG_LEVEL": "0"}, None, None),
])
def test_native_level_to_set(environ, verbosity, expected):
  assert console.native_level_to_set(environ, verbosity) == expected


@pytest.mark.parametrize("value,level", [(None, 0), ("2", 2), ("9", 3), ("-1", 0), ("x", 0)])
def test_native_level(value, level):
  assert console.native_level({} if value is None else {"TF_CPP_MIN_LOG_LEVEL": value}) == level


# ---------------------------------------------------------------------------------------------
# What reaches stderr while TensorFlow loads.
# ---------------------------------------------------------------------------------------------

_LOADING = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796045341.024634   21097 port.cc:153] oneDNN custom operations are on.\n"
    "W0000 00:00:1796045341.024985   21097 dataset.cc:997] Input of GeneratorDatasetOp\n"
    "/x/site-packages/lib.py:12: DeprecationWarning: something a user must see\n"
    "E0000 00:00:1796045343.214985   21097 cuda_platform.cc:52] failed call to cuInit\n"
    "F0000 00:00:1796045343.214985   21097 op.cc:1] Check failed: the real problem\n")


def test_drop_native_records_keeps_the_levels_asked_for_and_every_other_line():
  warning = "/x/site-packages/lib.py:12: DeprecationWarning: something a user must see\n"
  assert console.drop_native_records(_LOADING, 3) == (
      warning + "F0000 00:00:1796045343.214985   21097 op.cc:1] Check failed: the real problem\n")
  assert console.drop_native_records(_LOADING, 1).splitlines()[0].startswith("W0000")
  assert console.drop_native_records(_LOADING, 0) == "".join(_LOADING.splitlines(True)[1:])


def test_native_stderr_filtered_replays_what_matters_and_restores_fd_2(capfd):
  with console.native_stderr_filtered(3):
    os.write(2, _LOADING.encode())  # as C++ writes it, and Python's sys.stderr
    os.write(2, b"a Python line\n")
  os.write(2, b"I0000 00:00:1796045341.000001   1 later.cc:1] after the load: not ours to filter\n")
  assert capfd.readouterr().err == (
      "/x/site-packages/lib.py:12: DeprecationWarning: something a user must see\n"
      "F0000 00:00:1796045343.214985   21097 op.cc:1] Check failed: the real problem\n"
      "a Python line\n"
      "I0000 00:00:1796045341.000001   1 later.cc:1] after the load: not ours to filter\n")


def test_native_stderr_filtered_replays_even_when_the_load_fails(capfd):
  with pytest.raises(ImportError):
    with console.native_stderr_filtered(3):
      os.write(2, b"I0000 00:00:1796045341.000001   1 port.cc:1] noise\nwhy the import failed\n")
      raise ImportError("libcudart.so: cannot open shared object file")
  assert capfd.readouterr().err == "why the import failed\n"


def test_tensorflow_loads_quietly_and_a_python_error_still_shows():
  script = ("from ohl_tf import console\n"
            "console.silence_tensorflow(['ohl_tf.main'])\n"
            "import tensorflow as tf\n"
            "tf.config.list_logical_devices()\n"  # CUDA's probe, on a machine without a GPU
            "raise RuntimeError('a genuine error')\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=_ROOT, env=environment(),
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert not native_lines(result.stdout + result.stderr), result.stderr
  assert "Traceback" in result.stderr and "RuntimeError: a genuine error" in result.stderr


# ---------------------------------------------------------------------------------------------
# The lines of a run.
# ---------------------------------------------------------------------------------------------

def test_format_duration():
  assert [console.format_duration(s) for s in (0, 7.4, 61, 3600 * 36 + 5, -3)] == [
      "0:00:00", "0:00:07", "0:01:01", "36:00:05", "0:00:00"]


def test_format_outer_step_is_one_line_for_any_number_of_trajectories():
  line = console.format_outer_step(3, 16, 12, 64, 811.7, [0.28125, 0.3125], 1, 62)
  assert line == ("outer step 3/16 (step 12/64): 812 images/s, val accuracy [0.281 0.312], "
                  "best 1, ETA 0:01:02")
  many = console.format_outer_step(1, 2, 1, 2, 1.0, [0.5] * 64, 0, 0)
  assert "\n" not in many and many.count("0.500") == 64


def _summary(**changes):
  config = run_config.Config(**{"model_dir": "/runs/quick", **changes})
  schedule = schedule_lib.Schedule(2048, config.batch_size, config.epochs, config.inner_steps)
  return console.format_summary(
      config, resuming=False, schedule=schedule,
      estimator=augmentation_policies.parse(config.policy).estimator(
          config.estimator).description(config.es_sigma, config.es_groups),
      trajectory_devices=[["/job:localhost/replica:0/task:0/device:GPU:0", "/device:GPU:1"],
                          ["/device:GPU:2", "/device:GPU:3"]][:config.trajectories])


def test_format_summary_of_a_search():
  assert _summary(trajectories=2, estimator="element_es", es_sigma=2.0, reward="loss",
                  theta_lr=0.5, inner_steps=4, epochs=1, batch_size=64).splitlines() == [
      "New run in /runs/quick",
      "  data      synthetic: 2048 training images, 500 validation",
      "  model     resnet8, batch 64, lr 0.1",
      "  policy    ohl: θ learned by element_es (σ=2), Adam lr 0.5; n* by validation loss",
      "  schedule  1 epoch of 32 steps, I=4 steps: 8 outer steps",
      "  search    N=2 on GPU:0,GPU:1 | GPU:2,GPU:3",
  ]
  assert ("  policy    ohl: θ learned by element_es (σ=2, one ε per operation), Adam lr 0.05; n* "
          "by validation accuracy") in _summary(trajectories=2, estimator="element_es",
                                                es_sigma=2.0, es_groups="operations")


def test_format_summary_names_a_search_space_other_than_the_papers():
  assert ("  policy    ohl in paper_identity: θ learned by reinforce, Adam lr 0.05; n* by "
          "validation accuracy" in _summary(search_space="paper_identity").splitlines())


def test_format_summary_of_a_baseline_resuming():
  summary = _summary(policy="cutout", trajectories=1)
  config = run_config.Config(model_dir="/runs/quick", policy="cutout", trajectories=1)
  schedule = schedule_lib.Schedule(2048, 128, 10, 0)
  resumed = console.format_summary(config, resuming=True, schedule=schedule, estimator=None,
                                   trajectory_devices=[["/device:CPU:0"]])
  assert "  policy    cutout (fixed); n* by validation accuracy" in summary.splitlines()
  assert resumed.splitlines()[0] == "Resuming the run in /runs/quick"
  assert "  schedule  10 epochs of 16 steps, I=1 epoch: 10 outer steps" in resumed.splitlines()


def test_show_terminal_prints_the_lines_bare_and_keeps_absl_at_warning(capsys, monkeypatch):
  from absl import logging  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(console._requested, "verbosity", None)  # pylint: disable=protected-access
  before = logging.get_verbosity()
  try:
    console.show_terminal()
    console.TERMINAL.info("outer step 1/2")
    assert capsys.readouterr().out == "outer step 1/2\n"
    assert logging.get_verbosity() == logging.WARNING
  finally:
    logging.set_verbosity(before)
    console.TERMINAL.handlers.clear()
    console.TERMINAL.propagate = True
