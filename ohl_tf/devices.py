"""Devices of the N trajectories: each gets its share of the accelerators, or shares one.

Every trajectory trains under its own `tf.distribute.MirroredStrategy` (docs/loop.md).
GPUs are split evenly; with more trajectories than devices, trajectories share a device (and then
run one after another); without GPUs every trajectory runs on the CPU, which tests can split into
logical devices to exercise the multi-device logic.
"""

import os
import shutil
import subprocess

from absl import logging
import tensorflow as tf

# What installs TensorFlow with its CUDA libraries (requirements.txt installs the CPU build).
GPU_INSTALL = "pip install -r requirements-gpu.txt"


def split_devices(devices, num_trajectories):
  """Assigns devices to trajectories.

  Args:
    devices: device names, e.g. ["/gpu:0", "/gpu:1", ...].
    num_trajectories: N >= 1.

  Returns:
    N lists of device names. With D >= N devices, trajectory n gets the D // N consecutive
    devices starting at n * (D // N) (the remainder D % N stays idle); with D < N, trajectory n
    gets [devices[n % D]].
  """
  if num_trajectories < 1:
    raise ValueError("num_trajectories must be >= 1. "
                     f"Received: num_trajectories={num_trajectories}")
  if not devices:
    raise ValueError(f"No devices to assign. Received: devices={devices!r}")
  share = len(devices) // num_trajectories
  if share == 0:
    return [[devices[n % len(devices)]] for n in range(num_trajectories)]
  return [list(devices[n * share:(n + 1) * share]) for n in range(num_trajectories)]


def visible_devices():
  """The devices trajectories train on: the GPUs if any, else the (logical) CPUs."""
  gpus = tf.config.list_logical_devices("GPU")
  return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def split_cpu(num_devices):
  """Splits the CPU into `num_devices` logical devices; call before TensorFlow uses a device."""
  if num_devices < 1:
    raise ValueError(f"--cpu_devices must be >= 1. Received: {num_devices}")
  if num_devices == 1:
    return
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def make_strategy(devices):
  """A MirroredStrategy over `devices` that coexists with the other trajectories' strategies.

  The default NCCL/collective all-reduce of two strategies in one process collides on collective
  group keys ("joining a group that is already full"); reducing through one device does not.
  """
  on_gpus = all("GPU" in d.upper() for d in devices)
  cross_device_ops = (tf.distribute.HierarchicalCopyAllReduce() if on_gpus and len(devices) > 1
                      else tf.distribute.ReductionToOneDevice())
  return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device_ops)


# ---------------------------------------------------------------------------------------------
# A GPU that TensorFlow does not see.
# ---------------------------------------------------------------------------------------------

def nvidia_gpu(device_file="/dev/nvidia0", path=None):
  """What shows that this machine has an NVIDIA GPU, or None: `device_file` exists, or
  `nvidia-smi -L` (found on `path`, default $PATH) lists one."""
  if os.path.exists(device_file):
    return device_file
  smi = shutil.which("nvidia-smi", path=path)
  if smi is None:
    return None
  try:
    listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10,
                            check=False).stdout
  except (OSError, subprocess.SubprocessError):
    return None
  gpus = [line.strip() for line in listed.splitlines() if line.startswith("GPU ")]
  return f"nvidia-smi lists {gpus[0]}" if gpus else None


def gpu_setup_warning(nvidia_evidence, tensorflow_gpus, cuda_visible_devices=None):
  """The one-line warning of a machine whose NVIDIA GPU TensorFlow does not see, or None.

  Args:
    nvidia_evidence: what shows the machine has an NVIDIA GPU (`nvidia_gpu`), or None.
    tensorflow_gpus: how many GPUs TensorFlow sees.
    cuda_visible_devices: $CUDA_VISIBLE_DEVICES; "" or "-1" hide the GPUs on purpose.
  """
  if nvidia_evidence is None or tensorflow_gpus or cuda_visible_devices in ("", "-1"):
    return None
  return (f"This machine has an NVIDIA GPU ({nvidia_evidence}) but TensorFlow sees none, so "
          "the run trains on the CPU: TensorFlow was likely installed without its CUDA libraries "
          f"(requirements.txt installs the CPU build); install them with `{GPU_INSTALL}`, and "
          "check the driver with nvidia-smi.")


def warn_if_gpu_unused():
  """Logs `gpu_setup_warning` for this machine, if there is one."""
  warning = gpu_setup_warning(nvidia_gpu(), len(tf.config.list_physical_devices("GPU")),
                              os.environ.get("CUDA_VISIBLE_DEVICES"))
  if warning:
    logging.warning(warning)
