"""ohl_tf.randaugment against Pillow, its draws, and a reproducible run.

  * Every operation of the paper's list at magnitudes 2, 5, 9 and 10, each sign of the geometric
    ones, through the public batched path on 256 real CIFAR-10 images, and at M = 9 with
    ImageNet's translation range on a real 224x224 mosaic: Pillow's bytes exactly. The Pillow
    calls are tests/autoaugment_reference.py's `pillow_op`, written from AutoAugment's released
    code independently of the module, whose level mapping RandAugment shares.
  * `apply_randaugment` end to end: Pillow replays each image's drawn operations and signs.
  * The draws: each of the 14 operations within 4.5 standard errors of 1/14, fair signs; the same
    seed gives the same bytes, another seed other bytes, eagerly, in tf.function and in tf.data.
  * --policy=randaugment with --deterministic, run twice into two model_dirs: the same weights.

Run: .venv/bin/python -m pytest tests/randaugment_test.py -q
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import autoaugment_reference as ref
import reproducible_run
from ohl_tf import augmentation_policies
from ohl_tf import randaugment

_MAGNITUDES = (2, 5, 9, 10)


def _reference(image, name, magnitude, sign, translate_policy="cifar10"):
  """Pillow's result of one RandAugment operation at magnitude M on a uint8 [H,W,3] image."""
  if name == "Identity":
    return image
  # Pillow >= 9 keeps 1..8 bits: the module's Posterize stops at level 9 (1 bit), see `_level`.
  level = min(magnitude, 9) if name == "Posterize" else magnitude
  return np.asarray(ref.pillow_op(Image.fromarray(image), name, level, sign, translate_policy))


def _cases():
  return [(name, magnitude, sign) for magnitude in _MAGNITUDES
          for name in randaugment.OPERATION_NAMES
          for sign in ((-1, 1) if name in ref.SIGNED else (1,))]


CASES = _cases()
CASE_IDS = [f"{name}_M{magnitude}_{sign:+d}" for name, magnitude, sign in CASES]


def _forced(num_images, name, sign):
  """Decisions that apply operation `name` with `sign` to every image, in one layer."""
  index = randaugment.OPERATION_NAMES.index(name)
  return randaugment.Decisions(np.full([num_images, 1], index, np.int32),
                               np.full([num_images, 1], sign, np.int32))


def _assert_exact(what, ours, pillow):
  assert ours.dtype == np.uint8 and ours.shape == pillow.shape, (what, ours.dtype, ours.shape)
  where = np.argwhere((ours != pillow).any(axis=-1))[:3].tolist()
  assert np.array_equal(ours, pillow), (
      f"{what}: {np.mean(ours == pillow):.5f} of the values equal; first differing pixels {where}")


# ---------------------------------------------------------------------------
# Operations against Pillow.
# ---------------------------------------------------------------------------

def test_operation_table_follows_the_paper_and_augmentation_transforms():
  assert randaugment.OPERATION_NAMES == (
      "Identity", "AutoContrast", "Equalize", "Rotate", "Solarize", "Color", "Posterize",
      "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY")
  table = randaugment.operation_table(9)
  assert [name for name, _ in table.operations] == list(randaugment.OPERATION_NAMES)
  index = randaugment.OPERATION_NAMES.index
  assert table.masks[index("Posterize")] == 0b10000000  # 4 - int(3.6) = 1 bit
  assert table.thresholds[index("Solarize")] == 256 - 230
  np.testing.assert_allclose(table.factors[index("Sharpness")], 1.72)
  # At the CIFAR magnitude the ImageEnhance factor is 1.0: those four are the identity there.
  assert set(randaugment.operation_table(5).factors.ravel().tolist()) == {1.0}
  assert randaugment.operation_table(10).masks[index("Posterize")] == 0b10000000
  assert randaugment.operation_table(0).thresholds[index("Solarize")] == 256  # nothing inverted


@pytest.fixture(scope="module")
def cifar_results(cifar_images):
  """Every case on the 256 CIFAR images, one mixed batch per magnitude."""
  results = {}
  n = len(cifar_images)
  for magnitude in _MAGNITUDES:
    cases = [case for case in CASES if case[1] == magnitude]
    decisions = [_forced(n, name, sign) for name, _, sign in cases]
    batch = np.concatenate([cifar_images] * len(cases))
    out = randaugment.apply_decisions(
        batch, randaugment.Decisions(*(np.concatenate(d) for d in zip(*decisions))),
        magnitude).numpy()
    results.update(zip(cases, np.split(out, len(cases))))
  return results


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_operation_matches_pillow_on_cifar(cifar_images, cifar_results, case):
  name, magnitude, sign = case
  pillow = np.stack([_reference(x, name, magnitude, sign) for x in cifar_images])
  _assert_exact(f"256 CIFAR images, {name} M={magnitude} sign {sign:+d}", cifar_results[case],
                pillow)
  if name != "Identity" and not (magnitude == 5 and name in ("Color", "Contrast", "Brightness",
                                                              "Sharpness")):
    assert (cifar_results[case] != cifar_images).any(), "the operation changed nothing"


def test_operations_match_pillow_at_224_with_imagenets_translation(mosaic_224):
  cases = [case for case in CASES if case[1] == 9]
  decisions = randaugment.Decisions(*(np.concatenate(d) for d in zip(
      *[_forced(1, name, sign) for name, _, sign in cases])))
  batch = np.repeat(mosaic_224[None], len(cases), axis=0)
  out = randaugment.apply_decisions(batch, decisions, 9, translate_policy="imagenet").numpy()
  for (name, magnitude, sign), ours in zip(cases, out):
    _assert_exact(f"224x224 mosaic, {name} M=9 sign {sign:+d}", ours,
                  _reference(mosaic_224, name, magnitude, sign, "imagenet"))


def test_apply_randaugment_is_pillow_per_image(cifar_images):
  seed = [2020, 9]
  for num_layers, magnitude in ((3, 5), (2, 9)):
    decisions = randaugment.sample_decisions(len(cifar_images), num_layers, seed)
    ours = randaugment.apply_randaugment(cifar_images, num_layers, magnitude, seed).numpy()
    operations, signs = (t.numpy() for t in decisions)
    pillow = []
    for image, image_operations, image_signs in zip(cifar_images, operations, signs):
      for operation, sign in zip(image_operations, image_signs):
        image = _reference(image, randaugment.OPERATION_NAMES[operation], magnitude, sign)
      pillow.append(image)
    _assert_exact(f"N={num_layers} M={magnitude}, 256 CIFAR images", ours, np.stack(pillow))
    assert (ours != cifar_images).any(axis=(1, 2, 3)).mean() > 0.5


# ---------------------------------------------------------------------------
# The draws, determinism, contexts.
# ---------------------------------------------------------------------------

def test_operations_are_uniform_and_signs_fair():
  num_images, num_layers = 1000, 3
  operations, signs = (t.numpy() for t in randaugment.sample_decisions(num_images, num_layers,
                                                                       [7, 8]))
  assert operations.shape == signs.shape == (num_images, num_layers)
  n, p = operations.size, 1 / randaugment.NUM_OPERATIONS
  counts = np.bincount(operations.reshape(-1), minlength=randaugment.NUM_OPERATIONS)
  assert len(counts) == randaugment.NUM_OPERATIONS
  standard_error = np.sqrt(n * p * (1 - p))
  assert np.all(np.abs(counts - n * p) < 4.5 * standard_error), counts
  assert set(np.unique(signs)) == {-1, 1}
  assert abs(signs.mean()) < 4.5 / np.sqrt(n)
  # The layers draw independently: each layer's first operation is not the next's.
  assert 0 < (operations[:, 0] == operations[:, 1]).mean() < 3 * p


def test_same_seed_same_bytes_other_seed_other_bytes(cifar_images):
  images = cifar_images[:64]
  first = randaugment.apply_randaugment(images, 3, 5, [1, 2]).numpy()
  for seed in ([1, 2], np.array([1, 2], np.int32), tf.constant([1, 2], tf.int64)):
    np.testing.assert_array_equal(randaugment.apply_randaugment(images, 3, 5, seed), first)
  assert not np.array_equal(randaugment.apply_randaugment(images, 3, 5, [1, 3]), first)
  np.testing.assert_array_equal(randaugment.apply_randaugment(images, 3, 5, 4),
                                randaugment.apply_randaugment(images, 3, 5, [4, 0]))
  np.testing.assert_array_equal(randaugment.apply_randaugment(images, 0, 5, [1, 2]), images)


def test_tf_function_and_tf_data_give_the_eager_bytes(cifar_images):
  images = cifar_images[:96]
  fn = tf.function(lambda batch, seed: randaugment.apply_randaugment(batch, 3, 5, seed),
                   input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8),
                                    tf.TensorSpec([2], tf.int32)])
  batches = [images[i:i + 32] for i in range(0, 96, 32)]
  eager = [randaugment.apply_randaugment(b, 3, 5, [9, i]).numpy() for i, b in enumerate(batches)]
  for i, b in enumerate(batches):
    np.testing.assert_array_equal(fn(b, tf.constant([9, i])), eager[i])
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(32).enumerate()
  dataset = dataset.map(lambda i, b: randaugment.apply_randaugment(
      b, 3, 5, tf.stack([tf.constant(9, tf.int64), i])), num_parallel_calls=2)
  for got, want in zip(dataset, eager):
    assert got.shape.as_list() == [32, 32, 32, 3]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dataset,num_layers,magnitude,translate_policy", [
    ("cifar10", 3, 5, "cifar10"), ("imagenet2012", 2, 9, "imagenet"),
])
def test_the_policy_flag_runs_the_published_settings(cifar_images, dataset, num_layers,
                                                     magnitude, translate_policy):
  augment_batch = augmentation_policies.parse("randaugment").augment_batch(dataset)
  np.testing.assert_array_equal(
      augment_batch(cifar_images[:32], [5, 6]),
      randaugment.apply_randaugment(cifar_images[:32], num_layers, magnitude, [5, 6],
                                    translate_policy))


# ---------------------------------------------------------------------------
# Bad arguments: a ValueError naming the argument.
# ---------------------------------------------------------------------------

_IMAGES = np.zeros([2, 8, 8, 3], np.uint8)


@pytest.mark.parametrize("magnitude", [-1, 11, 5.0, True, "5"])
def test_bad_magnitude(magnitude):
  with pytest.raises(ValueError, match=r"magnitude must be an int in \[0, 10\]"):
    randaugment.apply_randaugment(_IMAGES, 2, magnitude, [0, 1])


@pytest.mark.parametrize("num_layers", [-1, 2.0, None])
def test_bad_num_layers(num_layers):
  with pytest.raises(ValueError, match=r"num_layers must be an int >= 0"):
    randaugment.apply_randaugment(_IMAGES, num_layers, 5, [0, 1])


def test_bad_translate_policy_images_and_seed():
  with pytest.raises(ValueError, match=r"policy_name must be one of"):
    randaugment.apply_randaugment(_IMAGES, 2, 5, [0, 1], translate_policy="cifar")
  with pytest.raises(ValueError, match=r"images must be uint8"):
    randaugment.apply_randaugment(_IMAGES.astype(np.float32), 2, 5, [0, 1])
  with pytest.raises(ValueError, match=r"seed must be an int or an integer tensor of shape \[2\]"):
    randaugment.apply_randaugment(_IMAGES, 2, 5, [0, 1, 2])


# ---------------------------------------------------------------------------
# A reproducible run: --policy=randaugment --deterministic, twice.
# ---------------------------------------------------------------------------

def test_a_deterministic_randaugment_run_is_reproduced_from_its_seed(tmp_path):
  reproducible_run.assert_two_deterministic_runs_match(tmp_path, "randaugment")
