"""Tests of ohl_tf.export's SavedModel: the serving signature's named outputs read back with plain
TensorFlow and with saved_model_cli, the class-names asset, and the atomic replacement."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ohl_tf import export
from ohl_tf import preprocess

_NAMES = ("cat", "dog", "emu")
_SHAPE = (32, 32, 3)
_MEAN, _STD = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)  # CIFAR-10's


def _tiny_model(num_classes=len(_NAMES), dtype=None):
  """Global average pooling and a dense layer, with fixed weights: standardised channel c votes
  for class c % num_classes, so images of different dominant colours get different classes."""
  inputs = keras.Input(_SHAPE)
  pooled = keras.layers.GlobalAveragePooling2D()(inputs)
  dense = keras.layers.Dense(num_classes, dtype=dtype)
  model = keras.Model(inputs, dense(pooled), name="tiny")
  kernel = np.zeros([3, num_classes], np.float32)
  kernel[np.arange(3), np.arange(3) % num_classes] = 4.0
  dense.set_weights([kernel, np.linspace(-0.1, 0.1, num_classes, dtype=np.float32)])
  return model


def _images(cifar_images):
  """16 real CIFAR-10 images from across the ten classes: red, green and blue ones."""
  return cifar_images[::16]


def _resize_to_shape(image):
  """The serving_preprocess of an in-memory dataset of _SHAPE (`ImageDataset.serving_preprocess`)."""
  return preprocess.resize_uint8(image, _SHAPE[:2])


def _save(*args):
  export.save_classifier(*args, serving_preprocess=_resize_to_shape)


def _serve(path):
  return tf.saved_model.load(str(path)).signatures["serving_default"]


def test_serving_default_returns_probabilities_class_id_and_class_name(tmp_path, cifar_images):
  model, images, path = _tiny_model(), _images(cifar_images), tmp_path / "saved_model"
  _save(model, str(path), _MEAN, _STD, _SHAPE, _NAMES)

  serve = _serve(path)
  spec = serve.structured_input_signature[1]["images"]
  assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, *_SHAPE]
  assert {k: (v.dtype, v.shape.as_list()) for k, v in serve.structured_outputs.items()} == {
      "probabilities": (tf.float32, [None, 3]), "class_id": (tf.int64, [None]),
      "class_name": (tf.string, [None])}

  outputs = {k: v.numpy() for k, v in serve(images=tf.constant(images)).items()}
  expected = tf.nn.softmax(model(preprocess.normalize(images, _MEAN, _STD))).numpy()
  np.testing.assert_allclose(outputs["probabilities"], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(outputs["class_id"], expected.argmax(-1))
  assert len(set(outputs["class_id"].tolist())) > 1  # the check above is not vacuous
  assert [n.decode() for n in outputs["class_name"]] == [_NAMES[i] for i in outputs["class_id"]]


def test_class_names_travel_as_an_asset_written_from_the_same_names(tmp_path):
  path = tmp_path / "saved_model"
  _save(_tiny_model(), str(path), _MEAN, None, _SHAPE, _NAMES)
  asset = path / "assets" / export.CLASS_NAMES_FILE
  assert asset.read_bytes() == b"cat\ndog\nemu\n"
  loaded = tf.saved_model.load(str(path))
  # Tracked: the loaded object points at the copy inside the SavedModel, not the staging file.
  assert pathlib.Path(loaded.class_names_file.asset_path.numpy().decode()) == asset
  # Nothing else is left beside the export.
  assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


def test_probabilities_stay_float32_when_the_model_computes_in_float16(tmp_path, cifar_images):
  model, path = _tiny_model(dtype="float16"), tmp_path / "saved_model"
  assert model.output.dtype == "float16"
  _save(model, str(path), _MEAN, _STD, _SHAPE, _NAMES)
  outputs = _serve(path)(images=tf.constant(_images(cifar_images)))
  assert outputs["probabilities"].dtype == tf.float32
  np.testing.assert_allclose(outputs["probabilities"].numpy().sum(-1), 1.0, atol=1e-6)


def test_saved_model_cli_lists_the_named_outputs(tmp_path):
  path = tmp_path / "saved_model"
  _save(_tiny_model(), str(path), _MEAN, _STD, _SHAPE, _NAMES)
  # The CLI installed with TensorFlow, in the environment running the tests.
  cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
  if not cli.exists():
    pytest.skip(f"{cli} not found: saved_model_cli is installed with the tensorflow package")
  result = subprocess.run([str(cli), "show", "--all", "--dir", str(path)], capture_output=True,
                          text=True, timeout=300, check=False,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert result.returncode == 0, result.stderr[-3000:]
  signature = result.stdout[result.stdout.index("signature_def['serving_default']"):]
  for output, dtype, shape in [("probabilities", "DT_FLOAT", "(-1, 3)"),
                               ("class_id", "DT_INT64", "(-1)"),
                               ("class_name", "DT_STRING", "(-1)")]:
    assert f"outputs['{output}'] tensor_info:\n        dtype: {dtype}\n        shape: {shape}" \
        in signature, signature
  assert "inputs['images'] tensor_info:\n        dtype: DT_UINT8" in signature, signature


def test_an_export_replaces_the_older_one(tmp_path):
  path = tmp_path / "saved_model"
  _save(_tiny_model(), str(path), _MEAN, _STD, _SHAPE, _NAMES)
  _save(_tiny_model(4), str(path), _MEAN, _STD, _SHAPE, (*_NAMES, "fox"))
  assert (path / "assets" / export.CLASS_NAMES_FILE).read_text() == "cat\ndog\nemu\nfox\n"
  assert _serve(path).structured_outputs["probabilities"].shape.as_list() == [None, 4]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


@pytest.mark.parametrize("names,message", [
    (("cat", "dog"), r"class_names must name each of the model's 3 outputs. Received: 2 "
                     r"class_names for model 'tiny'"),
    (("cat", "dog", "cat"), r"class_names must be unique.*\['cat'\] more than once"),
    (("cat", "dog\nhound", "emu"), r"on one line. Received: class_names\[1\]='dog\\nhound'"),
    (("cat", "", "emu"), r"on one line. Received: class_names\[1\]=''"),
    (["cat", "dog", "emu"], r"class_names must be a non-empty tuple of str"),
])
def test_bad_class_names_are_named_and_nothing_is_written(tmp_path, names, message):
  with pytest.raises(ValueError, match=message):
    _save(_tiny_model(), str(tmp_path / "saved_model"), _MEAN, _STD, _SHAPE,
                           names)
  assert not list(tmp_path.iterdir())
