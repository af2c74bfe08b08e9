"""A name -> model-builder registry, in the style of tensorflow/models official/core/registry.py.

A builder is a function `builder(num_classes, input_shape) -> keras.Model` that returns an
uncompiled model mapping float32 images [B, H, W, C] (normalised by the data pipeline) to
logits [B, num_classes]. Builders register themselves with `@register("name")`; `models/__init__.py`
imports every builder module explicitly so that the registry is complete once `models` is
imported.
"""

import numbers
import re

_BUILDERS = {}


def register(name):
  """Returns a decorator that registers a model builder under `name`.

  Args:
    name: the key used by `build`, e.g. "resnet20". Registering a name twice raises, so that a
      copy-pasted module cannot silently replace another model.

  Returns:
    A decorator that records the builder and returns it unchanged.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"A model name must be a non-empty string. Received: name={name!r}")

  def decorator(builder):
    if name in _BUILDERS:
      raise ValueError(f"Model {name!r} is already registered (by "
                       f"{_BUILDERS[name].__module__}.{_BUILDERS[name].__qualname__}).")
    _BUILDERS[name] = builder
    return builder

  return decorator


def _natural_key(name):
  # "resnet8" before "resnet18": compare runs of digits as numbers.
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def names():
  """Returns the registered model names, sorted (numbers in names compared as numbers)."""
  return sorted(_BUILDERS, key=_natural_key)


def _check_num_classes(num_classes):
  if (isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral)
      or num_classes < 2):
    raise ValueError(f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
  return int(num_classes)


def _check_input_shape(input_shape):
  shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
  if (shape is None or len(shape) != 3
      or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0
                 for d in shape)):
    raise ValueError("input_shape must be a 3-tuple (height, width, channels) of positive "
                     f"integers, channels last. Received: input_shape={input_shape!r}")
  return tuple(int(d) for d in shape)


def build(name, num_classes, input_shape):
  """Builds the registered model `name`.

  Args:
    name: a registered name (see `names()`).
    num_classes: number of output logits, an integer >= 2.
    input_shape: (height, width, channels) of one image, positive integers.

  Returns:
    An uncompiled `keras.Model` from float32 images [B, H, W, C] to float32 logits
    [B, num_classes].

  Raises:
    ValueError: unknown name (the message lists the known ones) or invalid arguments.
  """
  if name not in _BUILDERS:
    raise ValueError(f"Unknown model {name!r}; known models: {', '.join(names())}")
  return _BUILDERS[name](num_classes=_check_num_classes(num_classes),
                         input_shape=_check_input_shape(input_shape))
