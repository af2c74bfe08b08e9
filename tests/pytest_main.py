"""Entry point of the Bazel py_test targets: runs pytest on the file named by the arguments."""

import sys

import pytest

if __name__ == "__main__":
  sys.exit(pytest.main(["-p", "no:cacheprovider"] + sys.argv[1:]))
