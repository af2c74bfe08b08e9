"""ohl_tf.autoaugment against an independent Pillow reference (tests/autoaugment_reference.py).

  * The policy tables against a second transcription of the paper's appendix.
  * Every (operation, level, sign) that occurs in the three policies, through the public batched
    path, on the 256 real CIFAR-10 images and on the 224x224 mosaic: Pillow's bytes exactly
    (stricter than docs/correctness.md, which asks >= 98% equal for geometric operations and
    >= 99% within +-1, MAE <= 0.5, for the others); geometric tables also on index images.
  * `apply_policy` end to end: per image, Pillow redoes what the drawn decisions say, and all
    bytes of the batch agree; the decisions follow the policy (uniform sub-policy, Bernoulli(p)
    per operation, fair signs); same seed, same bytes, eagerly, in tf.function and in tf.data.
  * Bad arguments raise a ValueError naming the argument.

Run: .venv/bin/python -m pytest tests/autoaugment_test.py -q
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import autoaugment_reference as ref
from ohl_tf import autoaugment

POLICY_SEED = [2019, 6]


def _pillow_op_batch(images, name, level, sign, policy):
  return np.stack([np.asarray(ref.pillow_op(Image.fromarray(x), name, level, sign, policy))
                   for x in images])


def _forced(num_images, subpolicy, slot, sign):
  """Decisions that apply only slot `slot` of `subpolicy`, with `sign`, to every image."""
  return autoaugment.Decisions(np.full(num_images, subpolicy, np.int32),
                               np.tile([slot == 0, slot == 1], (num_images, 1)),
                               np.full((num_images, 2), sign, np.int32))


def _cases():
  """Every distinct (policy, name, level, sign) of the policies, with a sub-policy slot using it.

  Signs only where the reference draws one (geometric operations); the policy only matters to
  translations (their maximal shift), so other operations are tested once, under the first policy
  that uses them. AutoContrast, Equalize and Invert ignore their level; each level is run anyway.
  """
  cases = {}
  for policy in autoaugment.POLICY_NAMES:
    for index, subpolicy in enumerate(ref.POLICIES[policy]):
      for slot, (name, _, level) in enumerate(subpolicy):
        for sign in ((-1, 1) if name in ref.SIGNED else (1,)):
          key = (policy if name.startswith("Translate") else None, name, level, sign)
          cases.setdefault(key, (policy, index, slot, name, level, sign))
  return sorted(cases.values(), key=lambda c: (c[3], c[4], c[5], c[0]))


CASES = _cases()
CASE_IDS = [f"{policy}_{name}_{level}_{sign:+d}" for policy, _, _, name, level, sign in CASES]


def _stats(ours, pillow):
  diff = np.abs(ours.astype(np.int16) - pillow.astype(np.int16))
  return float(np.mean(diff == 0)), float(np.mean(diff <= 1)), float(np.mean(diff))


def _assert_exact(what, ours, pillow):
  assert ours.dtype == np.uint8 and ours.shape == pillow.shape, (what, ours.dtype, ours.shape)
  exact, within_one, mae = _stats(ours, pillow)
  where = np.argwhere((ours != pillow).any(axis=-1))[:3].tolist()
  assert exact == 1.0, (f"{what}: exactly equal {exact:.5f}, within +-1 {within_one:.5f}, "
                        f"MAE {mae:.4f}; first differing pixels {where}")


# ---------------------------------------------------------------------------
# Tables: policies, dataset mapping, level -> parameter.
# ---------------------------------------------------------------------------

def test_policies_match_the_papers_tables():
  assert autoaugment.POLICY_NAMES == ("cifar10", "imagenet", "svhn")
  assert set(autoaugment.POLICIES) == set(autoaugment.POLICY_NAMES)
  for name in autoaugment.POLICY_NAMES:
    policy = autoaugment.POLICIES[name]
    assert len(policy) == 25, name
    for index, (mine, theirs) in enumerate(zip(policy, ref.POLICIES[name])):
      assert tuple(mine) == theirs, f"{name} sub-policy {index}: {mine}, paper {theirs}"
      for op_name, probability, level in mine:
        assert op_name in ref.NAMES and 0 <= probability <= 1 and 0 <= level <= 9, mine


@pytest.mark.parametrize("dataset,policy", [
    ("imagenet2012", "imagenet"), ("imagenet2012/5.1.0", "imagenet"),
    ("imagenet2012_subset:10pct", "imagenet"), ("svhn_cropped", "svhn"),
    ("cifar10", "cifar10"), ("cifar100", "cifar10"), ("synthetic", "cifar10"),
    ("folder:/data/cats", "cifar10"),
])
def test_policy_for_dataset(dataset, policy):
  assert autoaugment.policy_for_dataset(dataset) == policy
  assert policy in autoaugment.POLICY_NAMES


def test_operation_parameters_follow_augmentation_transforms():
  # Known values of tensorflow/models research/autoaugment/augmentation_transforms.py.
  param = autoaugment.operation_parameter
  assert param("cifar10", "Rotate", 9, 32, 32) == 27
  assert param("cifar10", "Posterize", 7, 32, 32) == 2  # 4 - int(2.8)
  assert param("imagenet", "Posterize", 8, 224, 224) == 1  # 4 - int(3.2)
  assert param("cifar10", "Solarize", 5, 32, 32) == 128
  assert param("cifar10", "Solarize", 0, 32, 32) == 256  # nothing inverted
  assert param("cifar10", "Color", 0, 32, 32) == pytest.approx(0.1)
  assert param("cifar10", "Sharpness", 9, 32, 32) == pytest.approx(1.72)
  assert param("cifar10", "ShearY", 8, 32, 32) == pytest.approx(0.24)
  assert param("cifar10", "TranslateY", 9, 32, 32) == 9  # int_parameter(9, 10) pixels
  assert param("svhn", "TranslateX", 3, 64, 32) == 6  # scaled with the width
  assert param("imagenet", "TranslateX", 10, 331, 331) == 150  # the paper's [-150, 150]
  assert param("imagenet", "TranslateX", 9, 224, 224) == 91  # int(9 * 150 * 224 / 331 / 10)
  assert param("cifar10", "Equalize", 3, 32, 32) is None
  # And the reference's float formulas at every level, for the sizes under test.
  for level in range(11):
    for size in (32, 224):
      for policy in autoaugment.POLICY_NAMES:
        assert param(policy, "TranslateX", level, size, 7) == ref.int_parameter(
            level, ref.translate_max(policy, size))
    assert param("svhn", "Rotate", level, 5, 5) == ref.int_parameter(level, 30)
    assert param("svhn", "Posterize", level, 5, 5) == 4 - ref.int_parameter(level, 4)
    assert param("svhn", "Solarize", level, 5, 5) == 256 - ref.int_parameter(level, 256)
    assert param("svhn", "ShearX", level, 5, 5) == ref.float_parameter(level, 0.3)
    assert param("svhn", "Contrast", level, 5, 5) == ref.float_parameter(level, 1.8) + 0.1


# ---------------------------------------------------------------------------
# Every (operation, level, sign) of the policies against Pillow.
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mosaic_results(mosaic_224):
  """All cases on the 224x224 mosaic in one batch (one image per case, mixed kernels)."""
  ours = {}
  for policy in autoaugment.POLICY_NAMES:
    cases = [c for c in CASES if c[0] == policy]
    decisions = autoaugment.Decisions(
        np.array([c[1] for c in cases], np.int32),
        np.array([[c[2] == 0, c[2] == 1] for c in cases]),
        np.array([[c[5], c[5]] for c in cases], np.int32))
    batch = np.repeat(mosaic_224[None], len(cases), axis=0)
    out = autoaugment.apply_decisions(batch, policy, decisions).numpy()
    ours.update(zip(cases, out))
  return ours


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_operation_matches_pillow_on_cifar(cifar_images, case):
  policy, index, slot, name, level, sign = case
  ours = autoaugment.apply_decisions(cifar_images, policy,
                                     _forced(len(cifar_images), index, slot, sign)).numpy()
  pillow = _pillow_op_batch(cifar_images, name, level, sign, policy)
  _assert_exact(f"256 CIFAR images, {policy} {name} level {level} sign {sign:+d}", ours, pillow)
  if autoaugment.operation_parameter(policy, name, level, 32, 32) != 1.0:  # enhance level 5
    assert (ours != cifar_images).any(), "the operation changed nothing"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_operation_matches_pillow_on_mosaic_224(mosaic_224, mosaic_results, case):
  policy, _, _, name, level, sign = case
  pillow = np.asarray(ref.pillow_op(Image.fromarray(mosaic_224), name, level, sign, policy))
  _assert_exact(f"224x224 mosaic, {policy} {name} level {level} sign {sign:+d}",
                mosaic_results[case], pillow)


def _index_image(width, height):
  """An RGB image whose pixel i holds i in base 256; Pillow's fill decodes to 8421504."""
  index = np.arange(width * height, dtype=np.int64).reshape(height, width)
  rgb = np.stack([index & 255, (index >> 8) & 255, index >> 16], axis=-1).astype(np.uint8)
  return Image.fromarray(rgb)


@pytest.mark.parametrize("width,height", [(32, 32), (224, 224), (45, 31)])
def test_source_tables_are_pillows_sampling(width, height):
  index_image = _index_image(width, height)
  for policy in autoaugment.POLICY_NAMES:
    geometric = dict.fromkeys((name, level) for subpolicy in ref.POLICIES[policy]
                              for name, _, level in subpolicy if name in ref.GEOMETRIC)
    table = autoaugment.operation_table(policy).source_table(height, width)
    assert table.shape == (2 * len(geometric), width * height)
    for g, (name, level) in enumerate(geometric):
      for column, sign in enumerate((-1, 1)):
        out = np.asarray(ref.pillow_op(index_image, name, level, sign, policy)).astype(np.int64)
        source = (out[..., 0] + (out[..., 1] << 8) + (out[..., 2] << 16)).reshape(-1)
        expected = np.where(source == 0x808080, width * height, source)
        np.testing.assert_array_equal(table[2 * g + column], expected,
                                      err_msg=f"{policy} {name} {level} {sign:+d}")


# ---------------------------------------------------------------------------
# apply_policy end to end: the decisions, then every byte against Pillow.
# ---------------------------------------------------------------------------

def _pillow_policy(images, policy, decisions):
  subpolicy, applied, signs = (np.asarray(t) for t in decisions)
  return np.stack([
      np.asarray(ref.pillow_subpolicy(Image.fromarray(x), policy, subpolicy[i], applied[i],
                                      signs[i]))
      for i, x in enumerate(images)])


@pytest.mark.parametrize("policy", autoaugment.POLICY_NAMES)
def test_apply_policy_is_pillow_per_image_on_cifar(cifar_images, policy):
  images = np.concatenate([cifar_images, cifar_images[:, ::-1]])  # 512: every sub-policy, often
  decisions = autoaugment.sample_decisions(len(images), policy, POLICY_SEED)
  ours = autoaugment.apply_policy(images, policy, POLICY_SEED).numpy()
  _assert_exact(f"{policy} policy, 512 CIFAR images", ours,
                _pillow_policy(images, policy, decisions))
  subpolicy, applied = decisions.subpolicy.numpy(), decisions.applied.numpy()
  assert set(subpolicy) == set(range(25))
  probability = np.array([[p for _, p, _ in s] for s in ref.POLICIES[policy]])[subpolicy]
  assert applied[probability == 0].sum() == 0 and applied[probability == 1].all()
  assert 0 < applied[(probability > 0) & (probability < 1)].mean() < 1
  assert (ours != images).any(axis=(1, 2, 3)).mean() > 0.5


def test_apply_policy_is_pillow_per_image_at_224(mosaic_224):
  views = [mosaic_224, mosaic_224[::-1], mosaic_224[:, ::-1], mosaic_224.transpose(1, 0, 2)]
  images = np.stack([np.roll(v, 32 * k, axis=k % 2) for k in range(4) for v in views])
  for policy, seed in (("imagenet", [3, 4]), ("imagenet", [5, 6]), ("cifar10", [3, 4])):
    decisions = autoaugment.sample_decisions(len(images), policy, seed)
    ours = autoaugment.apply_policy(images, policy, seed).numpy()
    _assert_exact(f"{policy} policy, 16 images 224x224, seed {seed}", ours,
                  _pillow_policy(images, policy, decisions))


@pytest.mark.parametrize("policy", autoaugment.POLICY_NAMES)
def test_decisions_follow_the_policy(policy):
  n = 200_000
  subpolicy, applied, signs = (t.numpy() for t in autoaugment.sample_decisions(n, policy, [7, 8]))
  # Uniform sub-policy: each count within 5 sigma of n / 25.
  counts = np.bincount(subpolicy, minlength=25)
  assert len(counts) == 25 and np.all(np.abs(counts - n / 25) < 5 * np.sqrt(n / 25 * 24 / 25))
  # Each slot applied with its probability, 0 and 1 exactly.
  probability = np.array([[p for _, p, _ in s] for s in ref.POLICIES[policy]])
  for index in range(25):
    rows = applied[subpolicy == index]
    for slot in range(2):
      p = probability[index, slot]
      tolerance = 5 * np.sqrt(max(p * (1 - p), 1e-12) / len(rows))
      assert abs(rows[:, slot].mean() - p) <= tolerance, (policy, index, slot, p)
  # The two slots independently: P(both) = P(first) P(second) over the policy.
  both = (applied[:, 0] & applied[:, 1]).mean()
  expected = (probability[:, 0] * probability[:, 1]).mean()
  assert abs(both - expected) < 0.01, (both, expected)
  # Fair signs, independent of the slot and of the application.
  assert set(np.unique(signs)) == {-1, 1}
  assert np.all(np.abs(signs.mean(axis=0)) < 0.01)
  assert abs(signs[applied].mean()) < 0.01 and abs((signs[:, 0] * signs[:, 1]).mean()) < 0.01


# ---------------------------------------------------------------------------
# Determinism and contexts: eager, tf.function, tf.data; seeds as ints, lists, tensors.
# ---------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes(cifar_images):
  images = cifar_images[:64]
  first = autoaugment.apply_policy(images, "cifar10", [1, 2]).numpy()
  for seed in ([1, 2], np.array([1, 2], np.int32), tf.constant([1, 2], tf.int64)):
    np.testing.assert_array_equal(autoaugment.apply_policy(images, "cifar10", seed), first)
  assert not np.array_equal(autoaugment.apply_policy(images, "cifar10", [1, 3]), first)
  np.testing.assert_array_equal(autoaugment.apply_policy(images, "cifar10", 5),
                                autoaugment.apply_policy(images, "cifar10", [5, 0]))


def test_tf_function_and_tf_data_give_the_eager_bytes(cifar_images):
  images = cifar_images[:96]
  fn = tf.function(lambda batch, seed: autoaugment.apply_policy(batch, "cifar10", seed),
                   input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8),
                                    tf.TensorSpec([2], tf.int32)])
  batches = [images[i:i + 32] for i in range(0, 96, 32)]
  eager = [autoaugment.apply_policy(b, "cifar10", [9, i]).numpy() for i, b in enumerate(batches)]
  for i, b in enumerate(batches):
    np.testing.assert_array_equal(fn(b, tf.constant([9, i])), eager[i])
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(32).enumerate()
  dataset = dataset.map(lambda i, b: autoaugment.apply_policy(
      b, "cifar10", tf.stack([tf.constant(9, tf.int64), i])))
  for got, want in zip(dataset, eager):
    assert got.shape.as_list() == [32, 32, 32, 3]
    np.testing.assert_array_equal(got, want)


def test_empty_and_single_image_batches(mosaic_224):
  assert autoaugment.apply_policy(np.zeros([0, 32, 32, 3], np.uint8), "svhn", [0, 1]).shape == (
      0, 32, 32, 3)
  out = autoaugment.apply_policy(mosaic_224[None], "imagenet", [0, 1])
  assert out.shape == (1, 224, 224, 3) and out.dtype == tf.uint8


# ---------------------------------------------------------------------------
# Bad arguments: a ValueError naming the argument.
# ---------------------------------------------------------------------------

_IMAGES = np.zeros([2, 8, 8, 3], np.uint8)


@pytest.mark.parametrize("name", ["autoaugment", "CIFAR10", None, ("cifar10",)])
def test_unknown_policy_name(name):
  with pytest.raises(ValueError, match=r"policy_name must be one of .*Received: policy_name="):
    autoaugment.apply_policy(_IMAGES, name, [0, 1])


@pytest.mark.parametrize("images,pattern", [
    (np.zeros([2, 8, 8, 3], np.float32), r"images must be uint8.*images.dtype=float32"),
    (np.zeros([8, 8, 3], np.uint8), r"images must be a batch \[B,H,W,3\].*\(8, 8, 3\)"),
    (np.zeros([1, 2, 8, 8, 3], np.uint8), r"images must be a batch \[B,H,W,3\]"),
    (np.zeros([2, 8, 8, 4], np.uint8), r"3 channels.*\(2, 8, 8, 4\)"),
    (np.zeros([2, 2, 8, 3], np.uint8), r"images must be at least 3x3"),
])
def test_bad_images(images, pattern):
  with pytest.raises(ValueError, match=pattern):
    autoaugment.apply_policy(images, "cifar10", [0, 1])


def test_a_size_known_only_at_run_time_gives_the_same_bytes(cifar_images):
  """The geometric tables are then built when the graph runs (operations._source_table)."""
  images = cifar_images[:64]
  dynamic = tf.function(lambda x: autoaugment.apply_policy(x, "cifar10", [3, 4]),
                        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
  np.testing.assert_array_equal(dynamic(images).numpy(),
                                autoaugment.apply_policy(images, "cifar10", [3, 4]).numpy())


@pytest.mark.parametrize("seed", [[1, 2, 3], [1.0, 2.0], "seed", [[1, 2]]])
def test_bad_seed(seed):
  with pytest.raises(ValueError, match=r"seed must be an int or an integer tensor of shape \[2\]"):
    autoaugment.apply_policy(_IMAGES, "cifar10", seed)


def test_bad_dataset_name():
  with pytest.raises(ValueError, match=r"dataset_name must be a string"):
    autoaugment.policy_for_dataset(None)


def test_unknown_operation_name():
  with pytest.raises(ValueError, match=r"name must be one of .*Received: name='Cutout'"):
    autoaugment.operation_parameter("cifar10", "Cutout", 3, 32, 32)
