"""The Bazel BUILD file: loads with `bazel query //...` and names every module and test."""

import pathlib
import shutil
import subprocess

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_no_nested_build_files():
  # A nested BUILD file would make its folder a package and silently empty the root globs.
  nested = [p for p in _ROOT.rglob("BUILD*")
            if p.parent != _ROOT and ".venv" not in p.parts and not p.parts[-2].startswith("bazel-")]
  assert not nested, f"BUILD files below the root break the globs of //:BUILD: {nested}"


@pytest.fixture(scope="module")
def bazel_targets(tmp_path_factory):
  if shutil.which("bazel") is None:
    pytest.skip("bazel is not on PATH (Debian: apt-get install bazel-bootstrap)")
  output_root = tmp_path_factory.mktemp("bazel")  # keeps ~/.cache and the repository clean
  result = subprocess.run(
      ["bazel", "--batch", f"--output_user_root={output_root}", "query", "--noshow_progress",
       "//..."], cwd=_ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return set(result.stdout.split())


def test_bazel_query_lists_packages_binaries_and_every_test(bazel_targets):
  expected = {"//:ohl_tf", "//:models", "//:main", "//:contact_sheet", "//:report",
              "//:test_support"}
  expected |= {f"//:{p.stem}" for p in (_ROOT / "tests").glob("*_test.py")}
  shared = {"reporting", "accuracy_rows"}  # BUILD's _BENCHMARK_SUPPORT: modules, not binaries
  expected |= {f"//:{p.stem}" for p in (_ROOT / "benchmarks").glob("*.py") if p.stem not in shared}
  assert expected <= bazel_targets, f"missing from `bazel query //...`: {expected - bazel_targets}"
