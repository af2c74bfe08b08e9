"""The private TensorFlow and Keras symbols of ohl_tf.private_api exist, with the arguments the
project passes: an upgrade that removes or changes one fails here, naming it."""

import importlib
import inspect
import logging
import pathlib

import keras
import pytest
import tensorflow as tf

from ohl_tf import private_api


def _object_of(key):
  """The object `SYMBOLS[key]` names; for an instance attribute, read on a new instance."""
  symbol = private_api.SYMBOLS[key]
  instance = None
  if symbol.instance:
    owner = symbol.attribute.split(".")[:-1]
    cls = importlib.import_module(symbol.module)
    for part in owner:
      cls = getattr(cls, part)
    instance = cls()
  return private_api._resolve(key, instance)  # pylint: disable=protected-access


@pytest.mark.parametrize("key", sorted(private_api.SYMBOLS))
def test_the_symbol_exists_and_takes_our_arguments(key):
  symbol = private_api.SYMBOLS[key]
  value = _object_of(key)  # a PrivateApiError names the symbol
  if symbol.arguments:
    parameters = inspect.signature(value).parameters
    missing = [a for a in symbol.arguments if a not in parameters]
    assert not missing, (f"{symbol.name} no longer takes {missing} (ohl_tf.{symbol.user} passes "
                         f"them); its parameters are now {list(parameters)}")


def test_a_missing_symbol_is_named_with_its_user(monkeypatch):
  monkeypatch.setitem(private_api.SYMBOLS, "indexed_case", private_api.Symbol(
      "tensorflow.python.ops.control_flow_switch_case", "_gone_helper", (), "operations"))
  with pytest.raises(private_api.PrivateApiError,
                     match=r"tensorflow.python.ops.control_flow_switch_case._gone_helper is "
                     r"missing .*ohl_tf.operations needs it.*Received: symbol="):
    private_api.unlowered_switch_case(tf.constant(0), [lambda: tf.constant(1)])
  monkeypatch.setitem(private_api.SYMBOLS, "indexed_case", private_api.Symbol(
      "tensorflow.python.ops.gone_module", "_indexed_case_helper", (), "operations"))
  with pytest.raises(private_api.PrivateApiError, match=r"gone_module._indexed_case_helper"):
    private_api.unlowered_switch_case(tf.constant(0), [lambda: tf.constant(1)])


def test_an_export_archive_without_its_trackable_is_named():
  class Archive:  # what a Keras whose ExportArchive dropped the attribute would give
    pass
  with pytest.raises(private_api.PrivateApiError, match=r"ExportArchive._tf_trackable"):
    private_api.export_archive_root(Archive())
  archive = keras.export.ExportArchive()
  assert private_api.export_archive_root(archive) is archive._tf_trackable  # pylint: disable=protected-access


def _lowering_of_case(switch_case):
  """The `_lower_using_switch_merge` attribute of the Case op `switch_case` builds (None: unset),
  and the selected branch's value."""
  @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
  def switch(index):
    return switch_case(index, [lambda: tf.constant(10), lambda: tf.constant(20)])
  nodes = switch.get_concrete_function().graph.as_graph_def().node
  (case,) = [node for node in nodes if node.op in ("Case", "StatelessCase")]
  lowering = case.attr["_lower_using_switch_merge"].b if "_lower_using_switch_merge" in case.attr \
      else None
  return lowering, int(switch(tf.constant(1)))


def test_the_switch_case_is_not_lowered_where_tf_switch_case_is():
  """The reason for the private helper: its Case op is not lowered to Switch/Merge."""
  assert _lowering_of_case(private_api.unlowered_switch_case) == (False, 20)
  assert _lowering_of_case(lambda i, fns: tf.switch_case(i, fns)) == (True, 20)


def test_no_module_imports_private_tensorflow_but_private_api():
  """Every other use goes through private_api's functions (one place to fix in an upgrade)."""
  root = pathlib.Path(private_api.__file__).resolve().parents[1]
  offenders = [
      f"{path.relative_to(root)}:{number}"
      for folder in ("ohl_tf", "models") for path in sorted((root / folder).rglob("*.py"))
      if path.name != "private_api.py"
      for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
      if ("tensorflow.python" in line or "tensorflow.compiler" in line or "keras.src" in line)
      and ("import" in line)]
  assert not offenders, f"private TensorFlow/Keras imported outside private_api: {offenders}"


def test_a_map_function_using_it_traces_without_autograph_warnings():
  """The lookup is not converted by autograph (it warned about importlib's internals)."""
  records = []
  handler = logging.Handler()
  handler.emit = records.append
  tf.get_logger().addHandler(handler)
  try:
    dataset = tf.data.Dataset.range(2).map(lambda i: private_api.unlowered_switch_case(
        tf.cast(i, tf.int32), [lambda: tf.constant(10), lambda: tf.constant(20)]))
    assert list(dataset.as_numpy_iterator()) == [10, 20]
  finally:
    tf.get_logger().removeHandler(handler)
  assert not [r.getMessage() for r in records if "AutoGraph" in r.getMessage()]
