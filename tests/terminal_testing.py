"""What tests of a run's terminal share: TensorFlow's log lines, and a user's environment."""

import os
import re

from ohl_tf import console

# TensorFlow's start-up chatter, as TF 2.21 prints it (and absl's Python records).
NATIVE_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|oneDNN|cuda|cpu_feature_guard|"
                         r"TensorFlow binary is optimized|absl::InitializeLog|INFO:tensorflow",
                         re.MULTILINE | re.IGNORECASE)


def native_lines(text):
  """The lines of `text` that are TensorFlow's logs."""
  return [line for line in text.splitlines() if NATIVE_LINE.search(line)]


def environment(**changes):
  """os.environ without the TF_CPP_MIN_LOG_LEVEL that conftest.py sets, plus `changes`."""
  env = {k: v for k, v in os.environ.items() if k != console.LEVEL_VARIABLE}
  env.update(changes)
  return env
