"""Entry point of the Bazel py_test targets: runs pytest on the file named by the arguments."""

import sys

import pytest

if __name__ == "__main__":
  # Bazel already runs the test files as parallel targets: no pytest-xdist workers within one.
  sys.exit(pytest.main(["-p", "no:cacheprovider", "-n", "0"] + sys.argv[1:]))
