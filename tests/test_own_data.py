"""Data of one's own: folders of class folders (PNG, JPEG, any size, grey or colour) and .npz files, their
splits, and a clear error naming the file for each kind of bad data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from handgrad import fit, presets
from handgrad.data import load
from handgrad.data.split import TEST_SEED, hold_out

COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}


def colour_folder(root, per_class=5, size=(32, 32), rng=None):
    """``root/<colour>/<k>.png|jpg``: noisy images tinted by their class's colour, PNG and JPEG mixed."""
    rng = np.random.default_rng(0) if rng is None else rng
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            pixels = np.clip(rng.normal(np.array(colour) * 0.7, 30, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{k}.{'png' if k % 2 else 'jpg'}")
    return root


def test_a_colour_folder_reads_its_classes_and_draws_a_seeded_test_split(tmp_path):
    root = colour_folder(tmp_path / "colours")
    (root / "notes.txt").write_text("not a class")
    (root / ".hidden").mkdir()
    (root / "red" / "README").write_text("not an image")
    data = load(root)
    assert data.classes == ("blue", "green", "red") and data.input_shape == (3, 32, 32)
    assert len(data.train_images) + len(data.test_images) == 15 and len(data.test_images) == 3  # a fifth
    labels = np.repeat([0, 1, 2], 5)
    kept, held = hold_out(15, 3, np.random.default_rng(TEST_SEED))
    np.testing.assert_array_equal(data.test_labels, labels[held])
    np.testing.assert_array_equal(data.train_labels, labels[kept])
    index = next(i for i in kept if i >= 10 and (i - 10) % 2)  # a red PNG: files sorted by name, 0.jpg 1.png ...
    red = np.asarray(Image.open(root / "red" / f"{index - 10}.png")).transpose(2, 0, 1)
    np.testing.assert_array_equal(data.train_images[list(kept).index(index)], red)
    assert np.array_equal(load(root).test_images, data.test_images)  # the same split every time

    grey = load(root, image_size=(20, 24), channels=1, test_split=6)
    assert grey.input_shape == (1, 20, 24) and grey.train_images.shape == (9, 20, 24) and len(grey.test_images) == 6
    channel_means = data.train_images[data.train_labels == 2].mean(axis=(0, 2, 3))
    assert channel_means[0] > 2 * channel_means[1]  # red is red


def test_train_and_test_sub_folders_are_the_two_splits(tmp_path):
    colour_folder(tmp_path / "split" / "train", per_class=4)
    colour_folder(tmp_path / "other", per_class=2, rng=np.random.default_rng(1))
    (tmp_path / "other" / "green").rename(tmp_path / "split" / "test")
    (tmp_path / "split" / "test").rename(tmp_path / "split" / "green")
    (tmp_path / "split" / "test").mkdir()
    (tmp_path / "split" / "green").rename(tmp_path / "split" / "test" / "green")
    data = load(tmp_path / "split")
    assert data.classes == ("blue", "green", "red") and len(data.train_images) == 12
    assert data.test_labels.tolist() == [1, 1]  # the test folder has only green: labels of the training classes
    with pytest.raises(ValueError, match=r"split: it has its own test/ folder, so no test split is drawn"):
        load(tmp_path / "split", test_split=0.5)
    (tmp_path / "split" / "test" / "purple").mkdir()
    with pytest.raises(ValueError, match=r"test: class folders \['purple'\] are not among the training classes"):
        load(tmp_path / "split")


def _write(path, pixels):
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize(
    "damage, message",
    [
        ("unreadable", r"cats/0.png: expected a PNG or JPEG image, found neither"),
        ("truncated", r"cats/0.png: expected PNG chunks up to IEND"),
        ("empty class", r"dogs: an empty class folder: expected PNG or JPEG images in it"),
        ("one class", r"pets: found one class folder \(cats\): a classifier needs at least two"),
        ("mixed sizes", r"dogs/1.png: expected an image of 16x16 pixels like .*cats/0.png \(or give --image-size"),
        ("no classes", r"pets: expected one sub-folder of images per class, found image files but no sub-folders"),
    ],
)
def test_bad_folders_are_one_clear_error_naming_the_file(tmp_path, damage, message):
    root = tmp_path / "pets"
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for k in range(2):
            _write(root / name / f"{k}.png", np.full((16, 16), 40 * k, np.uint8))
    if damage == "unreadable":
        (root / "cats" / "0.png").write_bytes(b"hello, world")
    elif damage == "truncated":
        data = (root / "cats" / "0.png").read_bytes()
        (root / "cats" / "0.png").write_bytes(data[: len(data) // 2])
    elif damage == "empty class":
        for path in (root / "dogs").iterdir():
            path.rename(root / "cats" / f"d{path.name}")
    elif damage == "one class":
        for path in (root / "dogs").iterdir():
            path.unlink()
        (root / "dogs").rmdir()
    elif damage == "mixed sizes":
        _write(root / "dogs" / "1.png", np.zeros((16, 20), np.uint8))
        assert load(root, image_size=(16, 16)).input_shape == (1, 16, 16)  # resized: no error
    elif damage == "no classes":
        for name in ("cats", "dogs"):
            for path in (root / name).iterdir():
                path.rename(root / f"{name}{path.name}")
            (root / name).rmdir()
    with pytest.raises(ValueError, match=message) as error:
        load(root)
    assert "\n" not in str(error.value)


def test_npz_files_of_either_layout_with_or_without_a_test_set(tmp_path, rng):
    x = rng.integers(0, 256, (30, 3, 8, 8), dtype=np.uint8)
    y = np.arange(30) % 3
    np.savez(tmp_path / "colour.npz", x=x, y=y, classes=np.array([b"a", b"b", b"c"]))  # bytes read as text
    data = load(tmp_path / "colour.npz", test_split=0.1)
    assert data.classes == ("a", "b", "c") and data.input_shape == (3, 8, 8) and len(data.test_images) == 3
    np.savez(tmp_path / "grey.npz", x=x[:, :1], y=y, x_test=x[:4, 0], y_test=y[:4] + 1)
    data = load(tmp_path / "grey.npz")
    assert data.classes == ("0", "1", "2", "3") and data.input_shape == (1, 8, 8)  # four: y_test reaches 3
    np.testing.assert_array_equal(data.train_images, x[:, 0])
    np.testing.assert_array_equal(data.test_images, x[:4, 0])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": "float", "y": "y"}, r"x must be uint8 pixels \(N, H, W\) or \(N, C, H, W\) .*got float64"),
        ({"x": "x", "y": "short"}, r"y must be integer labels \(12,\), one per image, got int64 \(11,\)"),
        ({"x": "x", "y": "y", "classes": "two"}, r"labels go up to 2, outside the 2 classes \(labels 0 to 1\)"),
        ({"x": "x", "y": "zeros"}, r"every label is 0, a single class: a classifier needs at least two"),
        ({"x": "x"}, r"expected arrays x \(images\) and y \(labels\), missing \['y'\]"),
        ({"x": "x", "y": "y", "labels": "y"}, r"unknown arrays \['labels'\]"),
        ({"x": "x", "y": "y", "classes": "objects"}, r"an array needs pickle, which handgrad never uses"),
        ({"x": "x", "y": "y", "x_test": "x"}, r"expected both x_test and y_test or neither"),
        ({"x": "x", "y": "y"}, r"test split 0.01 of 12 images holds out none"),
        ({"x": "x", "y": "y", "classes": "latin1"}, r"class name b'\\xff' is not UTF-8 text"),
        ({"x": "x", "y": "huge"}, r"labels go up to 10000000, more classes than the 12 images; number them 0 to"),
        ({"x": "x", "y": "top"}, r"labels go up to 9223372036854775808, more classes than the 12 images"),
    ],
)
def test_bad_npz_files_are_one_clear_error_naming_the_file(tmp_path, rng, arrays, message):
    values = {
        "x": rng.integers(0, 256, (12, 8, 8), dtype=np.uint8),
        "float": rng.random((12, 8, 8)),
        "y": np.arange(12) % 3,
        "short": np.arange(11) % 3,
        "zeros": np.zeros(12, np.int64),
        "latin1": np.array([b"\xff", b"b", b"c"]),
        "huge": np.array([0, 1] * 5 + [1, 10**7]),
        "top": np.array([0, 1] * 5 + [1, 2**63], dtype=np.uint64),
        "two": np.array(["a", "b"]),
        "objects": np.array(["a", None, "c"], dtype=object),
    }
    path = tmp_path / "data.npz"
    np.savez(path, **{key: values[name] for key, name in arrays.items()})
    split = 0.01 if "holds out none" in message else None
    with pytest.raises(ValueError, match=message) as error:
        load(path, test_split=split)
    assert str(error.value).startswith(str(path))


def test_not_an_npz_file_and_options_for_other_sources(tmp_path):
    (tmp_path / "x.npz").write_text("x, y\n")
    with pytest.raises(ValueError, match=r"x.npz: expected an .npz file \(a zip archive of arrays\)"):
        load(tmp_path / "x.npz")
    with pytest.raises(ValueError, match=r"--image-size, --test-split: for a folder of images or an .npz file, not"):
        load("mnist-t10k", image_size=(32, 32), test_split=0.1)


def test_images_of_one_grey_level_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "flat.npz"
    np.savez(path, x=np.full((20, 28, 28), 7, np.uint8), y=np.arange(20) % 2)
    model, loss = presets.build("seed-cnn", np.random.default_rng(0), classes=2)
    with pytest.raises(ValueError, match=r"needs images that are not all one grey level") as error:
        fit(model, loss, load(path), epochs=1, progress=False, log=lambda *a: None)
    assert str(error.value).startswith(f"{path}: ")
