"""Tests of ohl_tf.export's SavedModel: the two signatures' named outputs read back with plain
TensorFlow and served by saved_model_cli run (the session-based loader of TF Serving), encoded
images prepared as evaluation prepares the dataset's, the class-names asset, and the atomic
replacement."""

import io
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import models
from ohl_tf import datasets
from ohl_tf import export
from ohl_tf import preprocess
from ohl_tf import run_config
from ohl_tf import search

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
  """An in-memory dataset's serving_preprocess at _SHAPE (`ImageDataset.serving_preprocess`)."""
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


def _cli(*args):
  """The stdout of saved_model_cli, the CLI installed with TensorFlow in the tests' environment."""
  cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
  if not cli.exists():
    pytest.skip(f"{cli} not found: saved_model_cli is installed with the tensorflow package")
  result = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=300,
                          check=False, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_saved_model_cli_lists_both_signatures_and_their_named_outputs(tmp_path):
  path = tmp_path / "saved_model"
  _save(_tiny_model(), str(path), _MEAN, _STD, _SHAPE, _NAMES)
  listing = _cli("show", "--all", "--dir", str(path))
  for signature, input_name, input_info in [
      (export.SERVING_DEFAULT, "images", "dtype: DT_UINT8\n        shape: (-1, 32, 32, 3)"),
      (export.SERVING_BYTES, "image_bytes", "dtype: DT_STRING\n        shape: (-1)")]:
    listed = listing[listing.index(f"signature_def['{signature}']"):]
    listed = listed[:listed.index("Method name is: tensorflow/serving/predict")]
    assert f"inputs['{input_name}'] tensor_info:\n        {input_info}" in listed, listed
    for output, dtype, shape in [("probabilities", "DT_FLOAT", "(-1, 3)"),
                                 ("class_id", "DT_INT64", "(-1)"),
                                 ("class_name", "DT_STRING", "(-1)")]:
      assert f"outputs['{output}'] tensor_info:\n        dtype: {dtype}\n        shape: {shape}" \
          in listed, listed


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


# ---------------------------------------------------------------------------------------------
# Served by saved_model_cli run, TF Serving's loader; encoded images prepared as in evaluation.
# ---------------------------------------------------------------------------------------------

_OUTPUTS = ("probabilities", "class_id", "class_name")


def _encode(image, image_format, **options):
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, image_format, **options)
  return buffer.getvalue()


def _loaded_outputs(path, signature, **inputs):
  """A signature's outputs as numpy arrays, through tf.saved_model.load (TF2's Python loader)."""
  served = tf.saved_model.load(str(path)).signatures[signature]
  return {k: v.numpy() for k, v in served(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def _cli_outputs(path, signature, name, inputs, folder):
  """A signature's outputs through `saved_model_cli run`: the session-based loader that TF
  Serving and KServe's TensorFlow runtime use, which restores variables by the MetaGraph's saver.
  """
  folder.mkdir()
  np.save(folder / "inputs.npy", inputs)  # encoded images: an object array of bytes (pickled)
  _cli("run", "--dir", str(path), "--tag_set", "serve", "--signature_def", signature,
       "--inputs", f"{name}={folder / 'inputs.npy'}", "--outdir", str(folder / "outputs"))
  return {k: np.load(folder / "outputs" / f"{k}.npy", allow_pickle=True) for k in _OUTPUTS}


def _assert_same_outputs(actual, expected):
  """Bit for bit: the same probabilities, class ids and class names."""
  assert actual["probabilities"].dtype == np.float32
  np.testing.assert_array_equal(actual["probabilities"], expected["probabilities"])
  np.testing.assert_array_equal(actual["class_id"], expected["class_id"])
  assert [bytes(n) for n in actual["class_name"]] == [bytes(n) for n in expected["class_name"]]


def _assert_cli_serves_both_signatures_as_tf_loads(path, images, encoded, folder):
  for signature, name, inputs in [(export.SERVING_DEFAULT, "images", images),
                                  (export.SERVING_BYTES, "image_bytes", encoded)]:
    _assert_same_outputs(_cli_outputs(path, signature, name, inputs, folder / signature),
                         _loaded_outputs(path, signature, **{name: inputs}))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
  """The quick run's kind of run, on the synthetic data, made small: (model_dir, its dataset)."""
  config = run_config.Config(
      dataset="synthetic", model="resnet8", trajectories=1, epochs=1, inner_steps=2,
      batch_size=16, train_subset=64, val_size=64, eval_batch_size=64,
      model_dir=str(tmp_path_factory.mktemp("quick") / "run"))
  search.run(config)
  return pathlib.Path(config.model_dir), datasets.load("synthetic", val_size=config.val_size)


def test_saved_model_cli_run_serves_the_quick_runs_export_as_tf_saved_model_load(quick_run,
                                                                                tmp_path):
  model_dir, _ = quick_run
  images = datasets.synthetic_examples(6, seed=5)[0]
  # One batch of encoded images of two formats and two sizes.
  encoded = np.array([_encode(image, "PNG") for image in images[:4]] + [
      _encode(np.asarray(Image.fromarray(image).resize((45, 38))), "JPEG", quality=90)
      for image in images[4:]], object)
  _assert_cli_serves_both_signatures_as_tf_loads(model_dir / "saved_model", images, encoded,
                                                 tmp_path)


def test_png_bytes_are_served_as_their_pixels_and_a_larger_jpeg_as_evaluation_resizes_it(
    quick_run, tmp_path):
  model_dir, data = quick_run
  path = model_dir / "saved_model"
  images = data.test_images[:8]
  pixels = _loaded_outputs(path, export.SERVING_DEFAULT, images=images)
  assert len(set(pixels["class_name"].tolist())) > 1  # the check below is not vacuous
  png = np.array([_encode(image, "PNG") for image in images], object)
  _assert_same_outputs(_loaded_outputs(path, export.SERVING_BYTES, image_bytes=png), pixels)

  # A JPEG of another size and aspect: decoded as a folder dataset reads a file, resized to the
  # training size as the dataset's serving_preprocess (resize_uint8) says.
  jpeg_files = []
  for k, image in enumerate(images[:3]):
    jpeg_files.append(tmp_path / f"{k}.jpg")
    jpeg_files[-1].write_bytes(
        _encode(np.asarray(Image.fromarray(image).resize((71, 50))), "JPEG", quality=85))
  prepared = np.stack([preprocess.resize_uint8(datasets.read_image(f), [32, 32]).numpy()
                       for f in jpeg_files])
  assert not np.array_equal(prepared, images[:3])  # JPEG and two resizes changed the pixels
  _assert_same_outputs(
      _loaded_outputs(path, export.SERVING_BYTES,
                      image_bytes=np.array([f.read_bytes() for f in jpeg_files], object)),
      _loaded_outputs(path, export.SERVING_DEFAULT, images=prepared))


def _image_folder(root, images, per_split):
  """ROOT/<split>/<class>/<k>.png of real images, three classes; the test files, as the folder
  reader orders them."""
  images = iter(images)
  for split, count in per_split.items():
    for name in _NAMES:
      (root / split / name).mkdir(parents=True)
      for k in range(count):
        Image.fromarray(next(images)).save(root / split / name / f"{k:02d}.png")
  return sorted((root / "test").glob("*/*.png"))


def test_a_folder_datasets_export_serves_its_files_as_evaluation_reads_them(tmp_path,
                                                                            cifar_images):
  # --image_size=24 resizes the 32x32 files, so serving_bytes must resize them as the reader did.
  test_files = _image_folder(tmp_path / "data", cifar_images[::8], {"train": 6, "test": 3})
  data = datasets.load(f"folder:{tmp_path / 'data'}", val_size=3, image_size=24)
  assert data.image_shape == (24, 24, 3)
  path = tmp_path / "saved_model"
  export.save_classifier(models.build("resnet8", 3, data.image_shape), str(path), data.mean,
                         data.std, data.image_shape, data.class_names,
                         serving_preprocess=data.serving_preprocess)
  encoded = np.array([f.read_bytes() for f in test_files], object)
  # The files' bytes give exactly what the evaluation's images, read and resized, give.
  _assert_same_outputs(_loaded_outputs(path, export.SERVING_BYTES, image_bytes=encoded),
                       _loaded_outputs(path, export.SERVING_DEFAULT, images=data.test_images))
  _assert_cli_serves_both_signatures_as_tf_loads(path, data.test_images, encoded, tmp_path)


def test_imagenet_exports_resize_and_centre_crop_encoded_images_as_evaluation(tmp_path,
                                                                             mosaic_224):
  data = datasets.StreamingDataset(
      name="imagenet2012", class_names=_NAMES, mean=preprocess.IMAGENET_MEAN, std=None,
      image_size=32, num_train=1, num_val=1, read=None)
  path = tmp_path / "saved_model"
  export.save_classifier(_tiny_model(), str(path), data.mean, data.std, data.image_shape,
                         data.class_names, serving_preprocess=data.serving_preprocess)
  # Landscape and portrait JPEGs: the shorter side to round(32 * 256 / 224) = 37, crop 32.
  encoded = [_encode(mosaic_224[:150, :200], "JPEG"), _encode(mosaic_224[:, 40:130], "JPEG")]
  prepared = np.stack([preprocess.imagenet_eval(data.decode(e), 32, 37).numpy()
                       for e in encoded])
  _assert_same_outputs(
      _loaded_outputs(path, export.SERVING_BYTES, image_bytes=np.array(encoded, object)),
      _loaded_outputs(path, export.SERVING_DEFAULT, images=prepared))


def test_a_serving_preprocess_of_another_shape_is_named_and_nothing_is_written(tmp_path):
  with pytest.raises(ValueError, match=r"serving_preprocess must return a uint8 image of the "
                                       r"model's shape \(32, 32, 3\). Received: an image with "
                                       r"dtype=uint8, shape=\(None, None, 3\)"):
    export.save_classifier(_tiny_model(), str(tmp_path / "saved_model"), _MEAN, _STD, _SHAPE,
                           _NAMES, serving_preprocess=lambda image: image)
  assert not list(tmp_path.iterdir())
  # Nothing is left behind in TensorFlow either: a later tf.distribute scope still opens.
  assert tf.compat.v1.get_variable_scope().caching_device is None
  with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
    pass
