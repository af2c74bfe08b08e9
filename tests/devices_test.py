"""Devices (ohl_tf/devices.py): the warning of a machine whose NVIDIA GPU TensorFlow misses."""

import os
import pathlib
import subprocess
import sys

import pytest
import terminal_testing

from ohl_tf import devices


def test_a_gpu_tensorflow_does_not_see_is_one_line_naming_the_cause_and_the_install():
  warning = devices.gpu_setup_warning("/dev/nvidia0", tensorflow_gpus=0)
  assert "\n" not in warning
  assert "NVIDIA GPU (/dev/nvidia0) but TensorFlow sees none" in warning
  assert "without its CUDA libraries" in warning and "pip install -r requirements-gpu.txt" in warning


def test_no_warning_without_a_gpu_with_a_gpu_in_use_or_gpus_hidden_on_purpose():
  assert devices.gpu_setup_warning(None, tensorflow_gpus=0) is None
  assert devices.gpu_setup_warning("/dev/nvidia0", tensorflow_gpus=1) is None
  for hidden in ("", "-1"):
    assert devices.gpu_setup_warning("/dev/nvidia0", 0, cuda_visible_devices=hidden) is None
  assert devices.gpu_setup_warning("/dev/nvidia0", 0, cuda_visible_devices="0") is not None


def _fake_nvidia_smi(folder, output):
  script = folder / "nvidia-smi"
  script.write_text(f"#!/bin/sh\nprintf '{output}'\n")
  script.chmod(0o755)
  return str(folder)


def test_the_gpu_is_found_by_its_device_file_or_by_nvidia_smi(tmp_path):
  device = tmp_path / "nvidia0"
  device.write_text("")
  assert devices.nvidia_gpu(str(device), path=str(tmp_path / "nowhere")) == str(device)
  missing = str(tmp_path / "missing")
  listed = _fake_nvidia_smi(tmp_path, "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1234)\\n")
  assert devices.nvidia_gpu(missing, path=listed) == (
      "nvidia-smi lists GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1234)")
  (tmp_path / "none").mkdir()
  empty = _fake_nvidia_smi(tmp_path / "none", "No devices were found\\n")
  assert devices.nvidia_gpu(missing, path=empty) is None
  assert devices.nvidia_gpu(missing, path=str(tmp_path / "nowhere")) is None
  assert os.path.exists(device)


def test_the_command_warns_at_its_start(tmp_path):
  # A bad flag stops the run just after the start: the warning, then the error.
  # As a user runs it (terminal_testing: without the TF_CPP_MIN_LOG_LEVEL of conftest.py).
  env = terminal_testing.environment(PATH=_fake_nvidia_smi(
      tmp_path, "GPU 0: NVIDIA L4 (UUID: GPU-5)\\n") + os.pathsep + os.environ["PATH"])
  env.pop("CUDA_VISIBLE_DEVICES", None)
  root = pathlib.Path(__file__).resolve().parents[1]
  result = subprocess.run([sys.executable, "-m", "ohl_tf.main", "--trajectories=0"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
  if os.path.exists("/dev/nvidia0"):
    pytest.skip("this machine has a GPU device file; the fake nvidia-smi is not what is seen")
  lines = result.stderr.splitlines()
  assert len(lines) == 2 and result.returncode == 1, result.stderr
  assert lines[0].endswith("This machine has an NVIDIA GPU (nvidia-smi lists GPU 0: NVIDIA L4 "
                           "(UUID: GPU-5)) but TensorFlow sees none, so the run trains on the "
                           "CPU: TensorFlow was likely installed without its CUDA libraries "
                           "(requirements.txt installs the CPU build); install them with `pip "
                           "install -r requirements-gpu.txt`, and check the driver with "
                           "nvidia-smi.")
  assert lines[1].startswith("error: --trajectories must be >= 1")
