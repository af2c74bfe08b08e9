"""The rows of `augmentation_accuracy.py`'s table: which trainer flags make a row, and which runs
an equal-compute row picks from (no flags of its own, so that tests can import it)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of the table: a policy and N, and for the equal-compute rows the runs to pick from.

  Attributes:
    label: the row's name in the table and in --rows.
    flags: the trainer's flags that make this row (beside the benchmark's budget and the data).
    picks_from: 0, or N: the row is the best (by validation) of N runs of row `base`.
    base: the row whose runs an equal-compute row picks from (its own label otherwise); runs
      are recorded under it, so the plain row and the equal-compute row share their first run.
  """
  label: str
  flags: tuple[str, ...]
  picks_from: int = 0
  base: str = ""

  @property
  def recorded_as(self):
    return self.base or self.label


def known(trajectories):
  """The rows the benchmark knows, by label."""
  fixed = {name: Row(name, (f"--policy={name}", "--trajectories=1"))
           for name in ("none", "cutout", "autoaugment", "randaugment", "trivialaugment")}
  table = dict(fixed)
  table["uniform"] = Row("uniform", ("--policy=uniform", "--trajectories=1"))
  table[f"uniform N={trajectories}"] = Row(
      f"uniform N={trajectories}", ("--policy=uniform", f"--trajectories={trajectories}"))
  table["ohl"] = Row("ohl", ("--policy=ohl", f"--trajectories={trajectories}"))
  for name, row in fixed.items():
    label = f"best of {trajectories} {name}"
    table[label] = Row(label, row.flags, picks_from=trajectories, base=name)
  return table


def requested(labels, row_flags, trajectories):
  """The rows named by `labels`, after `row_flags` (the --row_flags specs) made or changed rows.

  A spec is LABEL=FLAGS (extra trainer flags for a known row) or NEW<KNOWN=FLAGS (a new row from
  a known one; FLAGS may be empty). A new row made from `best of N X` must be named
  `best of N Y`: it picks from N runs recorded as row Y, so the plain row Y made with the same
  flags shares its first run (and runs of other flags never mix into X's).

  Raises:
    ValueError: naming the spec or label at fault and what would be valid.
  """
  rows = known(trajectories)
  for spec in row_flags:
    # Split at the "=" that starts the flags: a label may hold "=" ("uniform N=4").
    target, separator, extra = spec.partition("=-")
    extra = "-" + extra if separator else ""
    if not separator and target.endswith("="):  # 'NEW<known=': a new name, no extra flags
      target = target[:-1]
    label, _, base = target.partition("<")
    source = rows.get(base or label)
    if source is None:
      raise ValueError(f"--row_flags={spec!r}: unknown row {(base or label)!r}. "
                       f"Known: {sorted(rows)}")
    picks_from_label = source.base
    if source.picks_from:
      prefix = f"best of {source.picks_from} "
      if not label.startswith(prefix) or label == prefix:
        raise ValueError(f"--row_flags={spec!r}: a row made from {base!r} picks from N runs of "
                         f"another row; name it '{prefix}<that row>', e.g. "
                         f"'{prefix}{source.base} r20'.")
      picks_from_label = label[len(prefix):]
    rows[label] = dataclasses.replace(source, label=label, base=picks_from_label,
                                      flags=source.flags + tuple(extra.split()))
  unknown = [label for label in labels if label not in rows]
  if unknown:
    raise ValueError(f"--rows: unknown {unknown}. Known: {sorted(rows)}")
  return [rows[label] for label in labels]
