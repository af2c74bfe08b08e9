"""Tests of `folder:ROOT` (ohl_tf/datasets/folder.py): its layouts, the refused ambiguous ones,
and streaming from the files, which must give what the folder held in memory gives: the same
splits, statistics, batches and, end to end, the same θ."""

import json
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
import pipeline_testing
import run_testing

from ohl_tf import datasets
from ohl_tf import pipeline
from ohl_tf import policy
from ohl_tf import run_config
from ohl_tf import schedule as schedule_lib
from ohl_tf import search
from ohl_tf.datasets import folder
from ohl_tf.datasets import registry


def _write(path, image, image_format="PNG"):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path, image_format)


def _make(root, counts, size=(8, 8), seed=0, image_format="PNG"):
  """root/<class>/<i>.<format> of random pixels for {class: count}; sizes vary when `size` is a
  list (one is picked per image)."""
  rng = np.random.default_rng(seed)
  for name, count in counts.items():
    for i in range(count):
      shape = size[rng.integers(len(size))] if isinstance(size, list) else size
      _write(root / name / f"{i:03d}.{image_format.lower()}",
             rng.integers(0, 256, [*shape, 3], dtype=np.uint8), image_format)


def _pixels_of(data, split):
  """{image bytes: label} of a split, whatever the dataset's kind."""
  return {image.tobytes(): int(label)
          for image, label in data.eval_examples(split).as_numpy_iterator()}


# ---------------------------------------------------------------------------------------------
# Layouts.
# ---------------------------------------------------------------------------------------------

def test_class_folders_at_the_root_hold_out_a_seeded_test_split(tmp_path):
  _make(tmp_path, {"b": 7, "a": 6, "c": 7})
  load = lambda seed: datasets.load(f"folder:{tmp_path}", val_size=4, test_size=5, seed=seed)
  data = load(1)

  assert data.class_names == ("a", "b", "c")
  assert (len(data.train_images), len(data.val_images), len(data.test_images)) == (11, 4, 5)
  assert data.description == (f"test split 5 images held out of {tmp_path}/<class> "
                              "(--test_size, seeded by --seed)")
  everything = {**_pixels_of(data, "val"), **_pixels_of(data, "test"),
                **{image.tobytes(): int(label)
                   for image, label in zip(data.train_images, data.train_labels)}}
  files = {np.asarray(Image.open(path)).tobytes(): "abc".index(path.parent.name)
           for path in tmp_path.glob("*/*.png")}
  assert everything == files  # the three splits partition the folder, labels kept
  # The same seed: the same split; another seed: another test split.
  np.testing.assert_array_equal(load(1).test_images, data.test_images)
  assert not np.array_equal(load(2).test_images, data.test_images)


def test_class_folders_at_the_root_without_a_test_split(tmp_path):
  _make(tmp_path, {"a": 3, "b": 3})
  data = datasets.load(f"folder:{tmp_path}", val_size=2)  # load's test_size defaults to 0
  assert not data.has_test and len(data.train_images) == 4
  assert data.description == "no test split (--test_size=0)"


@pytest.mark.parametrize("test_size", [6, 100])
def test_a_test_size_the_folder_cannot_spare_is_refused(tmp_path, test_size):
  _make(tmp_path, {"a": 3, "b": 4})
  with pytest.raises(ValueError, match=rf"test_size \(--test_size\) must be in \[0, 5\] for "
                     rf"folder:{tmp_path}, whose {tmp_path}/<class> folders hold 7 images: .*"
                     rf"Received: test_size={test_size}$"):
    datasets.load(f"folder:{tmp_path}", val_size=1, test_size=test_size)
  # 5 can be spared, leaving 2 training images, of which validation may take only 1.
  assert datasets.load(f"folder:{tmp_path}", val_size=1, test_size=5).num_train == 1
  with pytest.raises(ValueError, match=r"--val_size\) must be in \[1, 1\]"):
    datasets.load(f"folder:{tmp_path}", val_size=2, test_size=5)


@pytest.mark.parametrize("split", ["test", "val", "validation"])
def test_train_with_a_test_val_or_validation_folder(tmp_path, split):
  _make(tmp_path / "train", {"a": 4, "b": 4})
  _make(tmp_path / split, {"a": 2, "b": 1}, seed=1)
  data = datasets.load(f"folder:{tmp_path}", val_size=2, test_size=3)  # test_size unused here
  assert (len(data.train_images), len(data.val_images), len(data.test_images)) == (6, 2, 3)
  np.testing.assert_array_equal(data.test_labels, [0, 0, 1])
  assert data.description == f"test split {tmp_path / split} (3 images)"


def test_train_alone_has_no_test_split(tmp_path):
  _make(tmp_path / "train", {"a": 3, "b": 3})
  data = datasets.load(f"folder:{tmp_path}", val_size=2, test_size=2)
  assert not data.has_test and data.description == "no test split"


def test_val_classes_must_match_train(tmp_path):
  _make(tmp_path / "train", {"a": 2, "b": 2})
  _make(tmp_path / "val", {"a": 1, "zebra": 1})
  with pytest.raises(ValueError, match=r"val must have the same class folders as .*train: "
                     r"missing from val: \['b'\], not in train: \['zebra'\]. Received: val "
                     r"classes \['a', 'zebra'\]"):
    datasets.load(f"folder:{tmp_path}", val_size=1)


@pytest.mark.parametrize("split", ["val", "validation"])
def test_train_val_and_test_folders_give_the_three_splits(tmp_path, split):
  _make(tmp_path / "train", {"a": 4, "b": 4})
  _make(tmp_path / split, {"a": 3, "b": 2}, seed=1)
  _make(tmp_path / "test", {"a": 2, "b": 1}, seed=2)
  load = lambda val_size, seed=0: datasets.load(f"folder:{tmp_path}", val_size=val_size,
                                                 test_size=4, seed=seed)  # test_size unused
  data = load(5)
  # Every training image trains; validation is the val folder; test the test folder.
  assert (len(data.train_images), len(data.val_images), len(data.test_images)) == (8, 5, 3)
  files = lambda folder: {np.asarray(Image.open(path)).tobytes(): "ab".index(path.parent.name)
                          for path in (tmp_path / folder).glob("*/*.png")}
  assert _pixels_of(data, "val") == files(split) and _pixels_of(data, "test") == files("test")
  assert {image.tobytes(): int(label) for image, label in
          zip(data.train_images, data.train_labels)} == files("train")
  assert data.description == (f"test split {tmp_path / 'test'} (3 images); validation split 5 "
                              f"of the 5 images of {tmp_path / split}")
  # --val_size takes that many of the folder's images, seeded; more than it holds is refused.
  assert set(_pixels_of(load(2, seed=1), "val")) < set(files(split))
  np.testing.assert_array_equal(load(2, seed=1).val_images, load(2, seed=1).val_images)
  assert len({load(2, seed=seed).val_images.tobytes() for seed in range(6)}) > 1
  with pytest.raises(ValueError, match=rf"val_size \(--val_size\) must be in \[1, 5\] for "
                     rf"folder:{tmp_path}, whose validation folder {tmp_path / split} holds 5 "
                     r"images: the validation split is chosen from them. Received: val_size=6$"):
    load(6)


def test_a_streamed_three_split_folder_gives_the_in_memory_splits(tmp_path):
  _make(tmp_path / "train", {"x": 9, "y": 8}, size=[(16, 16), (20, 12)], image_format="JPEG")
  _make(tmp_path / "validation", {"x": 4, "y": 5}, size=[(16, 16), (9, 30)], seed=1,
        image_format="JPEG")
  _make(tmp_path / "test", {"x": 3, "y": 3}, seed=2, image_format="JPEG")
  memory, streamed = _load_both(tmp_path, val_size=7)
  _same_dataset(memory, streamed)
  assert streamed.num_train == 17 and len(streamed.val_paths) == 7
  assert all("/validation/" in path for path in streamed.val_paths)


@pytest.mark.parametrize("folders, problem", [
    (["train", "val", "validation"],
     r"it has train/ and both val/ and validation/, and either could be the test split"),
    (["train", "test", "val", "validation"],
     r"it has train/ and both val/ and validation/, and either could be the validation split"),
    (["train", "cat", "dog"], r"it has train/ and, beside it, \['cat', 'dog'\], which look like "
                              r"class folders"),
    (["test", "cat"], r"it has test/ but no train/, so test/ would be a class"),
    (["val", "cat", "dog"], r"it has val/ but no train/, so val/ would be a class"),
])
def test_ambiguous_layouts_are_refused_naming_what_was_found(tmp_path, folders, problem):
  for name in folders:
    if name in ("train", "test", "val", "validation"):
      _make(tmp_path / name, {"a": 2, "b": 2})
    else:
      _make(tmp_path, {name: 2})
  with pytest.raises(ValueError, match=rf"^Dataset folder {tmp_path} is ambiguous: {problem}. "
                     r"A folder dataset is ROOT/<class>/<image>, or ROOT/train/<class>/<image> "
                     r"with at most one of test/, val/, validation/ beside it, or with test/ and "
                     r"one of val/, validation/ \(the validation split\). Received: folders "
                     rf"{re.escape(str(sorted(folders)))} in {tmp_path}$"):
    datasets.load(f"folder:{tmp_path}", val_size=1)


def test_images_directly_in_train_are_refused(tmp_path):
  _write(tmp_path / "train" / "x.png", np.zeros([4, 4, 3], np.uint8))
  with pytest.raises(ValueError, match=rf"No classes in {tmp_path}/train: expected "
                     rf"{tmp_path}/train/<class>/<image>, one sub-folder per class. Received: 1 "
                     rf"files and no class folder in {tmp_path}/train$"):
    datasets.load(f"folder:{tmp_path}", val_size=1)


@pytest.mark.parametrize("prefix", ["", "train"])
def test_nested_classes_are_refused(tmp_path, prefix):
  _make(tmp_path / prefix, {"a": 2})
  _make(tmp_path / prefix / "b" / "puppies", {"x": 2})
  with pytest.raises(ValueError, match=rf"Class folder {tmp_path / prefix / 'b'} holds "
                     r"sub-folders \['puppies'\]: classes must be one level deep.*Received: "
                     r"class folder 'b'$"):
    datasets.load(f"folder:{tmp_path}", val_size=1)


# ---------------------------------------------------------------------------------------------
# Streamed from the files: what the folder held in memory gives.
# ---------------------------------------------------------------------------------------------

@pytest.fixture(name="mixed_folder")
def _mixed_folder(tmp_path):
  """ROOT/<class> of JPEGs of several sizes, one already of the resized size (16x16)."""
  _make(tmp_path, {"x": 17, "y": 14, "z": 15}, size=[(16, 16), (20, 12), (9, 30)],
        image_format="JPEG")
  return tmp_path


def _load_both(root, **kwargs):
  settings = dict(val_size=6, test_size=5, seed=3, image_size=16)
  settings.update(kwargs)
  memory = datasets.load(f"folder:{root}", stream="never", **settings)
  streamed = datasets.load(f"folder:{root}", stream="always", **settings)
  assert isinstance(memory, datasets.ImageDataset)
  assert isinstance(streamed, datasets.FolderStream)
  return memory, streamed


def _same_dataset(memory, streamed):
  assert streamed.class_names == memory.class_names
  assert streamed.image_shape == memory.image_shape
  assert streamed.num_train == memory.num_train and streamed.has_test == memory.has_test
  # Exactly: integer sums over the same images.
  assert streamed.mean == memory.mean and streamed.std == memory.std
  assert streamed.description == memory.description + "; streamed from the files"
  for split in ("val", "test"):
    (images, labels), = memory.eval_examples(split).batch(1000).as_numpy_iterator()
    (streamed_images, streamed_labels), = streamed.eval_examples(split).batch(
        1000).as_numpy_iterator()
    np.testing.assert_array_equal(streamed_images, images, err_msg=split)
    np.testing.assert_array_equal(streamed_labels, labels, err_msg=split)


def test_streamed_folder_has_the_in_memory_splits_and_statistics(mixed_folder):
  memory, streamed = _load_both(mixed_folder)
  _same_dataset(memory, streamed)
  # Validation is cached on the devices alike: its size is known without reading it.
  sizes = [pipeline.dataset_bytes(pipeline.eval_dataset(data.eval_examples("val"), 4, data.mean,
                                                        data.std), 4)
           for data in (memory, streamed)]
  assert sizes[0] == sizes[1] == 2 * 4 * (16 * 16 * 3 * 4 + 4)  # 2 batches of float32, int32
  # All 35 training images are under the sample's size: the statistics of all of them.
  assert (memory.mean, memory.std) == registry.channel_stats(memory.train_images)
  # The training files, decoded, are the in-memory training images in the same order.
  decoded = np.stack([streamed.decode(tf.constant(path)).numpy()
                      for path in streamed.train_paths])
  np.testing.assert_array_equal(decoded, memory.train_images)


def test_statistics_come_from_the_same_seeded_sample_either_way(mixed_folder, monkeypatch):
  monkeypatch.setattr(folder, "STATS_SAMPLE_SIZE", 7)
  memory, streamed = _load_both(mixed_folder)
  _same_dataset(memory, streamed)
  sample = folder.stats_sample(memory.num_train, 3)
  assert len(sample) == 7
  assert (memory.mean, memory.std) == registry.channel_stats(memory.train_images[sample])
  assert memory.mean != registry.channel_stats(memory.train_images)[0]


@pytest.mark.parametrize("period, sampled", [(0, False), (3, True)])
def test_streamed_folder_gives_the_in_memory_batches(mixed_folder, period, sampled):
  memory, streamed = _load_both(mixed_folder)
  sources = [pipeline.MemorySource.from_arrays(memory.train_images[:30],
                                               memory.train_labels[:30]),  # --train_subset=30
             pipeline.FileSource.from_files(streamed.train_paths[:30], streamed.train_labels[:30],
                                            streamed.decode, streamed.image_shape)]
  schedule = schedule_lib.Schedule(30, batch_size=4, epochs=3, inner_steps=5)  # periods cross epochs
  log_probs = policy.log_operation_probabilities(
      tf.random.stateless_normal([1296], [1, 2])) if sampled else None
  batches = [list(pipeline_testing.period_batches(
      pipeline.TrainPipeline(source, schedule, memory.mean, memory.std, seed=5, cutout_size=4),
      period, 1, log_probs).as_numpy_iterator()) for source in sources]
  assert len(batches[0]) == 5
  for in_memory, streamed_batch in zip(*batches):
    np.testing.assert_array_equal(streamed_batch.images, in_memory.images)
    np.testing.assert_array_equal(streamed_batch.labels, in_memory.labels)
    np.testing.assert_array_equal(streamed_batch.ops, in_memory.ops)


def test_streamed_images_of_another_size_need_image_size(tmp_path):
  _make(tmp_path / "train", {"a": 3, "b": 3})
  _write(tmp_path / "train" / "b" / "z_big.png", np.zeros([12, 10, 3], np.uint8))
  with pytest.raises(ValueError, match=r"a/000\.png is 8x8 but .*b/z_big\.png is 12x10 .*Pass "
                     r"--image_size .*Received: image_size=None"):
    datasets.load(f"folder:{tmp_path}", val_size=1, stream="always")


@pytest.mark.parametrize("bad", ["size", "unreadable"])
def test_a_bad_test_image_of_a_streamed_folder_is_refused_before_training(tmp_path, bad):
  _make(tmp_path / "train", {"a": 3, "b": 3})
  _make(tmp_path / "test", {"a": 2, "b": 2})
  odd = tmp_path / "test" / "b" / "001.png"
  if bad == "size":
    _write(odd, np.zeros([12, 10, 3], np.uint8))
    message = r"Images differ in size: .* but .*test/b/001\.png is 12x10 .*Pass --image_size"
  else:
    odd.write_bytes(b"not an image")
    message = rf"Cannot read image file {re.escape(str(odd))} as PNG/JPEG/BMP/GIF"
  with pytest.raises(ValueError, match=message):
    datasets.load(f"folder:{tmp_path}", val_size=1, stream="always")


def test_a_streamed_image_of_another_size_fails_naming_the_file(tmp_path):
  _make(tmp_path, {"a": 3, "b": 3})
  data = datasets.load(f"folder:{tmp_path}", val_size=1, stream="always")
  odd = tmp_path / "odd.png"
  _write(odd, np.zeros([8, 9, 3], np.uint8))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"(?s)Images differ in size: this file is not 8x8 .*Pass --image_size"
                           r".*Received: image_size=None, file=.*odd\.png"):
    data.decode(tf.constant(str(odd)))
  assert data.decode(tf.constant(data.train_paths[0])).shape == (8, 8, 3)


def test_streamed_unreadable_file_is_named(tmp_path):
  _make(tmp_path, {"a": 3, "b": 3})
  bad = tmp_path / "b" / "001.png"
  bad.write_bytes(b"not an image")
  with pytest.raises(ValueError, match=rf"Cannot read image file {re.escape(str(bad))} as "
                     r"PNG/JPEG/BMP/GIF"):
    datasets.load(f"folder:{tmp_path}", val_size=1, stream="always")


def test_a_streamed_file_that_fails_mid_run_is_named(tmp_path):
  # Made unreadable after the first outer step, as a file outside the files read at start-up
  # (the statistics' sample, the test split) of a folder larger than STATS_SAMPLE_SIZE may be.
  _make(tmp_path / "images", {"a": 12, "b": 12})
  data = datasets.load(f"folder:{tmp_path / 'images'}", val_size=4, test_size=4, stream="always")
  bad = pathlib.Path(data.train_paths[5])
  config = run_config.Config(model="resnet8", trajectories=1, epochs=3, batch_size=8, val_size=4,
                             eval_batch_size=4, model_dir=str(tmp_path / "run"))
  ohl = search.OnlineSearch(config, data, [["/device:CPU:0"]])
  corrupt = lambda step: step["period"] == 0 and bad.write_bytes(b"not an image")
  # In epoch 2, or 3 if the pipeline decoded ahead of the period.
  with pytest.raises(ValueError, match=(
      r"^The run stopped in outer step ([23]) of 3 \(its checkpoint of outer step [12] is kept: "
      r"replace the file and run the same command again to resume\)\. Cannot read image file "
      rf"{re.escape(str(bad))} as PNG/JPEG/BMP/GIF: Unknown image file format")):
    ohl.run(on_outer_step=corrupt)
  # Only a decode's failure sets off the pass over the files; any other error is raised as it is.
  assert ohl._bad_file(tf.errors.InvalidArgumentError(None, None, "Incompatible shapes")) is None


def test_auto_streams_by_file_count_and_decoded_size(tmp_path):
  listing = folder.Listing(("a", "b"), ["f"] * 15_000, None, ["t"] * 5_000, None, "")
  assert not folder.should_stream("auto", listing, (32, 32, 3))  # 20,000 files, 61 MB
  more = folder.Listing(("a", "b"), ["f"] * 20_001, None, None, None, "")
  assert folder.should_stream("auto", more, (32, 32, 3))
  assert folder.should_stream("auto", listing, (224, 224, 3))  # 3 GB decoded
  assert folder.should_stream("always", listing, (1, 1, 3))
  assert not folder.should_stream("never", more, (224, 224, 3))
  with pytest.raises(ValueError, match=r"stream \(--folder_stream\) must be one of auto, always, "
                     r"never. Received: stream='yes'"):
    datasets.load(f"folder:{tmp_path}", val_size=1, stream="yes")


# ---------------------------------------------------------------------------------------------
# End to end: the README's command on a ROOT/<class> folder, held in memory and streamed.
# ---------------------------------------------------------------------------------------------

def test_the_readme_folder_command_trains_the_same_theta_streamed_or_in_memory(tmp_path):
  readme = (run_testing.ROOT / "README.md").read_text()
  command = "--dataset=folder:/data/pets --model=resnet20 --val_size=500"
  assert command in readme
  root = tmp_path / "pets"
  _make(root, {"cat": 540, "dog": 560}, size=(32, 32))  # 1,100 images: test 500, val 500
  runs = {stream: tmp_path / stream for stream in ("never", "always")}
  results = run_testing.run_side_by_side([
      (model_dir, [*command.replace("/data/pets", str(root)).split(),
                   # Shrunk: 2 outer steps of 2 trajectories on 64 training images.
                   "--train_subset=64", "--batch_size=32", "--epochs=1", "--inner_steps=1",
                   "--trajectories=2", "--eval_batch_size=250", "--deterministic",
                   f"--folder_stream={stream}"])
      for stream, model_dir in runs.items()], small=False)
  for (stream, model_dir), result in zip(runs.items(), results):
    assert result.returncode == 0, result.stderr[-3000:]
    streamed = "; streamed from the files" if stream == "always" else ""
    assert result.stdout.splitlines()[1] == (
        f"  data      folder:{root}: 64 training images, 500 validation; test split 500 images "
        f"held out of {root}/<class> (--test_size, seeded by --seed){streamed}")
    assert json.loads((model_dir / "results.json").read_text())["test_accuracy"] is not None
  expected = run_testing.final_checkpoint(runs["never"])
  assert any("theta" in name for name in expected)
  run_testing.assert_same_checkpoint(runs["always"], expected)
  assert ((runs["never"] / "results.json").read_text().split('"wall_time_s"')[0] ==
          (runs["always"] / "results.json").read_text().split('"wall_time_s"')[0])
  # Both exports serve encoded files alike (a streamed folder's serving_bytes included).
  files = tf.constant([path.read_bytes() for path in sorted(root.glob("*/*"))[:3]])
  served = [tf.saved_model.load(str(runs[stream] / "saved_model")).signatures["serving_bytes"](
      image_bytes=files) for stream in ("never", "always")]
  for name in ("probabilities", "class_id", "class_name"):
    np.testing.assert_array_equal(served[1][name].numpy(), served[0][name].numpy(), err_msg=name)
