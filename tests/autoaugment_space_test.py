"""--search_space=autoaugment_cifar10: AutoAugment's CIFAR-10 operations as OHL elements.

  * The elements are the policy's distinct (name, probability, level) slots, read from the
    independent transcription of the paper's appendix (tests/autoaugment_reference.py), plus
    Identity last; 42 elements, 1764 operations.
  * Each element, both signs, on the 256 real CIFAR-10 images, batched and per image: Pillow's
    bytes (the released AutoAugment code's call at that level); sign 0 (the element drawn but
    not applied) leaves the image unchanged; and random operations with drawn signs, per image
    against Pillow redoing e1 then e2 where each applies.
  * `draw_signs`: each element applies with its probability (within 5 standard errors over
    200,000 draws), Identity always; the paper's spaces draw exactly `operations.sample_signs`;
    a sign 0 is refused in a space whose elements always apply.
  * The space through the trainer, `LearnedAugment` and policy.json (which records the
    probabilities and is refused by a run in another space).

Run: .venv/bin/python -m pytest tests/autoaugment_space_test.py -q
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import autoaugment_reference as ref
from ohl_tf import augment
from ohl_tf import export
from ohl_tf import operations
from ohl_tf import policy_file
from ohl_tf.learned_augment import LearnedAugment

SPACE = augment.AUTOAUGMENT_CIFAR10
IDENTITY = SPACE.num_elements - 1
_LEVEL_FREE = ("AutoContrast", "Equalize", "Invert")


def _reference_elements():
  """The CIFAR-10 policy's distinct slots from the reference's transcription, probability > 0."""
  return {(name, p, None if name in _LEVEL_FREE else level)
          for subpolicy in ref.POLICIES["cifar10"] for name, p, level in subpolicy if p > 0}


def _pillow_element(image, e, sign):
  element = SPACE.elements[e]
  if element.name == "Identity" or sign == 0:
    return image.copy()
  return ref.pillow_op(image, element.name, element.magnitude or 0, sign, "cifar10")


def _pillow_operations(images, ops, signs):
  out = []
  for image, op, (s1, s2) in zip(images, ops, signs):
    e1, e2 = divmod(int(op), SPACE.num_elements)
    result = _pillow_element(_pillow_element(Image.fromarray(image), e1, s1), e2, s2)
    out.append(np.asarray(result))
  return np.stack(out)


def test_the_elements_are_the_policys_distinct_slots_then_identity():
  assert augment.search_space("autoaugment_cifar10") is SPACE
  got = {(e.name, e.probability, e.magnitude) for e in SPACE.elements[:-1]}
  assert got == _reference_elements() and len(SPACE.elements[:-1]) == len(got) == 41
  assert SPACE.elements[IDENTITY] == augment.IDENTITY and SPACE.identity == IDENTITY
  assert SPACE.num_operations == 42**2 == 1764
  assert not SPACE.applies_always and augment.PAPER_IDENTITY.applies_always
  np.testing.assert_array_equal(SPACE.probabilities,
                                np.float32([e.probability for e in SPACE.elements]))



def test_operation_groups_number_the_operations_in_order():
  """--es_groups=operations: an operation's slots (levels, probabilities) share one group."""
  names = [element.name for element in SPACE.elements]
  groups = SPACE.operation_groups
  assert len(groups) == len(names) and groups[0] == 0
  assert sorted(set(groups)) == list(range(len(set(names))))  # 14 operations, Identity among them
  for a, b in zip(range(len(names)), range(len(names))[1:]):
    assert (groups[a] == groups[b]) == (names[a] == names[b])  # a family's slots are adjacent
  paper = augment.PAPER.operation_groups
  # Table 1: eleven operations at three magnitudes, then AutoContrast, Equalize, Invert.
  assert paper == tuple(e // 3 for e in range(33)) + (11, 12, 13)
  assert augment.PAPER_IDENTITY.operation_groups == paper + (14,)  # Identity, its own

@pytest.mark.parametrize("e", range(SPACE.num_elements),
                         ids=[f"{i}_{e.name}" for i, e in enumerate(SPACE.elements)])
def test_each_element_is_pillow_with_either_sign_and_nothing_with_sign_0(cifar_images, e):
  images = cifar_images
  for sign in (-1, 0, 1):
    expected = np.stack([np.asarray(_pillow_element(Image.fromarray(x), e, sign))
                         for x in images])
    elements, signs = np.full(len(images), e, np.int32), np.full(len(images), sign, np.int32)
    batched = augment.apply_element(images, elements, signs, space=SPACE).numpy()
    np.testing.assert_array_equal(batched, expected, err_msg=f"element {e}, sign {sign}")
    for i in (0, 97):  # the per-image path (a switch)
      one = augment.apply_element(images[i], e, sign, space=SPACE).numpy()
      np.testing.assert_array_equal(one, expected[i], err_msg=f"element {e}, sign {sign}")


def test_random_operations_with_drawn_signs_are_pillow(cifar_images):
  images = np.concatenate([cifar_images, cifar_images[:, ::-1]])  # 512
  ops = tf.random.stateless_uniform([len(images)], [5, 6], 0, SPACE.num_operations, tf.int32)
  signs = augment.draw_signs(ops, [7, 8], SPACE)
  expected = _pillow_operations(images, ops.numpy(), signs.numpy())
  batched = augment.apply_operation(images, ops, signs, space=SPACE).numpy()
  np.testing.assert_array_equal(batched, expected)
  drawn = augment.apply_drawn_operation(images, ops, signs, space=SPACE).numpy()
  np.testing.assert_array_equal(drawn, expected)
  for i in range(0, 512, 64):
    one = augment.apply_operation(images[i], ops[i], signs[i], space=SPACE).numpy()
    np.testing.assert_array_equal(one, expected[i])
  # The signs drawn by apply_operation itself from a seed are draw_signs' from that seed.
  np.testing.assert_array_equal(
      augment.apply_operation(images, ops, seed=[7, 8], space=SPACE).numpy(), expected)
  assert 0.2 < np.mean(signs.numpy() == 0) < 0.6


def test_at_224_the_loop_over_the_images_gives_pillows_bytes(mosaic_224):
  # From 128x128 the batched path is one loop over the images (`operations.map_if_large`).
  views = [mosaic_224, mosaic_224[::-1], mosaic_224[:, ::-1], mosaic_224.transpose(1, 0, 2)]
  images = np.stack([np.roll(v, 32 * k, axis=k % 2) for k in range(4) for v in views])
  ops = tf.random.stateless_uniform([len(images)], [9, 9], 0, SPACE.num_operations, tf.int32)
  signs = augment.draw_signs(ops, [1, 1], SPACE)
  expected = _pillow_operations(images, ops.numpy(), signs.numpy())
  np.testing.assert_array_equal(augment.apply_operation(images, ops, signs, space=SPACE).numpy(),
                                expected)
  np.testing.assert_array_equal(augment.apply_operation(images[3], ops[3], signs[3],
                                                        space=SPACE).numpy(), expected[3])
  assert np.any(signs.numpy() == 0) and np.any(signs.numpy() != 0)


def test_each_element_applies_with_its_probability():
  n = 200_000
  ops = tf.random.stateless_uniform([n], [1, 2], 0, SPACE.num_operations, tf.int32)
  signs = augment.draw_signs(ops, [3, 4], SPACE).numpy()
  elements = np.stack([ops.numpy() // SPACE.num_elements, ops.numpy() % SPACE.num_elements], -1)
  for e, element in enumerate(SPACE.elements):
    applied = signs[elements == e] != 0
    p = element.probability
    tolerance = 5 * np.sqrt(max(p * (1 - p), 1e-12) / applied.size)
    assert abs(applied.mean() - p) <= tolerance, (e, element, applied.mean())
  nonzero = signs[signs != 0]
  assert set(np.unique(nonzero)) == {-1, 1} and abs(nonzero.mean()) < 0.01
  # The two positions independently: both apply as often as the product says.
  p = SPACE.probabilities[elements]
  both = np.all(signs != 0, axis=1).mean()
  assert abs(both - np.mean(p[:, 0] * p[:, 1])) < 5 * np.sqrt(0.25 / n)
  # Stateless: the same seed, the same draws; another seed, others.
  np.testing.assert_array_equal(augment.draw_signs(ops, [3, 4], SPACE).numpy(), signs)
  assert np.any(augment.draw_signs(ops, [3, 5], SPACE).numpy() != signs)


@pytest.mark.parametrize("space", [augment.PAPER, augment.PAPER_IDENTITY], ids=lambda s: s.name)
def test_the_papers_spaces_draw_the_signs_they_always_drew(space):
  ops = tf.random.stateless_uniform([1000], [1, 2], 0, space.num_operations, tf.int32)
  np.testing.assert_array_equal(augment.draw_signs(ops, [3, 4], space),
                                operations.sample_signs([1000, 2], [3, 4]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="signs must be -1 or \\+1"):
    augment.apply_operation(np.zeros([2, 8, 8, 3], np.uint8), [0, 1], [[1, 0], [1, 1]],
                            space=space)


def test_a_sign_outside_minus_one_zero_and_one_is_refused_here_too():
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"-1, \+1 or 0"):
    augment.apply_operation(np.zeros([2, 8, 8, 3], np.uint8), [0, 1], [[1, 2], [1, 1]],
                            space=SPACE)


def test_learned_augment_samples_and_applies_the_space(tmp_path, cifar_images):
  probabilities = np.zeros([42, 42])
  rotate = [e.name for e in SPACE.elements].index("Rotate")
  probabilities[rotate, IDENTITY] = 1.0  # Rotate(2) p0.7 alone
  layer = LearnedAugment(probabilities, seed=4)
  assert layer.space is SPACE
  images = cifar_images[:200]
  ops, signs = layer.sample_operations(4000)
  assert set(np.unique(ops.numpy())) == {42 * rotate + IDENTITY}
  applied = signs.numpy()[:, 0] != 0
  assert abs(applied.mean() - 0.7) < 5 * np.sqrt(0.21 / 4000)
  outputs = layer(images).numpy()
  unchanged = np.all(outputs == images, axis=(1, 2, 3))
  assert 30 < unchanged.sum() < 90  # 60 expected: 0.3 of 200, ± 5 standard deviations of 6.5
  path = tmp_path / "policy.json"
  export.write_json(path, policy_file.learned_payload(np.zeros(1764, np.float32)))
  payload = json.loads(path.read_text())
  assert payload["search_space"] == "autoaugment_cifar10"
  assert payload["elements"][rotate] == {"name": "Rotate", "magnitude": 2, "probability": 0.7}
  assert payload["elements"][IDENTITY] == {"name": "Identity", "magnitude": None}
  assert LearnedAugment.from_policy(path, seed=0).space is SPACE
  with pytest.raises(ValueError, match=r"learned in --search_space=autoaugment_cifar10 .*this "
                                       r"run's is --search_space=paper_identity"):
    policy_file.read(str(path), augment.PAPER_IDENTITY)
  # A file whose probabilities were changed is refused: the elements are the space's check.
  payload["elements"][rotate]["probability"] = 0.8
  export.write_json(path, payload)
  with pytest.raises(ValueError, match=r"element %d" % rotate):
    policy_file.read(str(path), SPACE)
  assert not os.path.exists(str(path) + ".tmp")
