"""The image cache and the batches made from it, as a user of a search would notice them."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS

import trainer.data
import trainer.decode
from tests.helpers.damaged_files import damage_a_tensor_in_place
from tests.helpers.images import make_image, make_image_folder
from trainer.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_batches,
    steps_per_epoch,
    train_batches,
)
from trainer.data import (
    ImageData,
    ImageSplit,
    cache_side,
    check_fits,
    check_holdout,
    default_cache_dir,
    load_image_data,
)
from trainer.decode import decode_image
from trainer.errors import ConfigError, DataError
from trainer.listing import IMAGE_EXTENSIONS
from trainer.sources import default_data_root

SIDE = cache_side(32)  # 37 px
MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def load(folder, cache_dir, **kwargs) -> ImageData:
    return load_image_data(folder, 32, cache_dir=cache_dir, progress=False, **kwargs)


def forget_loaded(monkeypatch) -> None:
    """As if in a new process: the next load must come from the cache file."""
    monkeypatch.setattr(trainer.data, "_LOADED", {})


def refuse_to_decode(path, side):
    raise AssertionError(f"decoded {path} although the cache is up to date")


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "images", train_per_class=12, val_per_class=4)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> ImageData:
    root = tmp_path_factory.mktemp("data")
    folder = make_image_folder(root / "images", train_per_class=16, val_per_class=6)
    return load(folder, root / "cache")


def pixels(normalised: torch.Tensor) -> torch.Tensor:
    """Back to 0..255, for comparing a batch with the cached images."""
    return (normalised * STD + MEAN) * 255


# --- loading --------------------------------------------------------------------------------------


def test_images_load_as_rgb_squares_labelled_by_their_class_folder(image_folder, cache_dir):
    (image_folder / "train" / "class_2" / "notes.txt").write_text("not an image, ignored")
    (image_folder / "train" / "class_2" / "._img_0000.JPEG").write_bytes(b"macOS metadata, ignored")
    # Every kind torchvision's ImageFolder takes: a TIFF and a PPM had been skipped without a word
    for suffix in (".TIF", ".ppm"):
        image = make_image(2, random.Random(suffix), (SIDE, SIDE))
        image.save(image_folder / "train" / "class_2" / f"scan{suffix}")
    # Images in subfolders of a class folder are the class's too, as in torchvision's ImageFolder
    # (they had been skipped without a word); a hidden folder's are not, at any depth: were they
    # listed, the empty one would be refused
    nested = image_folder / "train" / "class_2" / "2019" / "spring"
    (nested / ".thumbnails").mkdir(parents=True)
    make_image(2, random.Random(1), (SIDE, SIDE)).save(nested / "deep.png")
    (nested / ".thumbnails" / "deep.png").write_bytes(b"")
    (image_folder / "train" / "class_1" / ".git").mkdir()
    shutil.copy(nested / "deep.png", image_folder / "train" / "class_1" / ".git" / "x.png")
    data = load(image_folder, cache_dir)
    assert data.classes == ("class_0", "class_1", "class_2")
    # class_0 also holds the grayscale JPEG, RGB PNG, palette PNG and CMYK JPEG
    assert torch.bincount(data.train.labels).tolist() == [44, 40, 43]
    assert torch.bincount(data.val.labels).tolist() == [12, 12, 12]
    assert (
        data.train.images.shape == (127, 3, SIDE, SIDE) and data.train.images.dtype == torch.uint8
    )
    assert data.train.images.is_contiguous() and data.train.labels.dtype == torch.int64
    assert (count_grey_checking_colours(data.train), count_grey_checking_colours(data.val)) == (
        1,
        0,
    )


def test_a_data_folder_takes_the_image_kinds_torchvision_takes():
    assert set(IMAGE_EXTENSIONS) == set(IMG_EXTENSIONS)


def count_grey_checking_colours(split: ImageSplit) -> int:
    """Check each coloured image's dominant channel is its label's; return how many are grey."""
    colour = split.images.float().mean(dim=(2, 3))
    grey = colour.max(dim=1).values - colour.min(dim=1).values < 1
    # each class has its own dominant colour, so a wrong label shows as a wrong channel
    assert torch.equal(colour[~grey].argmax(dim=1), split.labels[~grey])
    return int(grey.sum())


def test_decoding_resizes_the_shorter_side_and_keeps_the_centre(tmp_path):
    # 80 x 40: black left edge, white right edge, grey middle; the centre square is all grey
    image = Image.new("L", (80, 40), 128)
    image.paste(0, (0, 0, 15, 40))
    image.paste(255, (65, 0, 80, 40))
    image.save(tmp_path / "wide.png")
    decoded = decode_image(tmp_path / "wide.png", 37)
    assert decoded.shape == (3, 37, 37) and decoded.dtype == torch.uint8
    assert int(decoded.min()) >= 120 and int(decoded.max()) <= 136


def test_second_load_reads_the_cache_without_decoding(small_folder, cache_dir, monkeypatch):
    first = load(small_folder, cache_dir)
    [cache_file] = cache_dir.glob("*.pt")
    written = cache_file.stat().st_mtime_ns
    forget_loaded(monkeypatch)
    monkeypatch.setattr(trainer.decode, "decode_image", refuse_to_decode)
    second = load(small_folder, cache_dir)
    assert second is not first
    assert torch.equal(second.train.images, first.train.images) and torch.equal(
        second.val.labels, first.val.labels
    )
    assert cache_file.stat().st_mtime_ns == written
    manifest = json.loads(cache_file.with_suffix(".json").read_text())
    assert manifest["folder"] == str(small_folder.resolve()) and manifest["side"] == SIDE


def test_loading_again_in_one_process_reuses_the_loaded_data(small_folder, cache_dir):
    assert load(small_folder, cache_dir) is load(small_folder, cache_dir)


def test_an_added_image_rebuilds_the_cache_and_removes_the_old_one(small_folder, cache_dir):
    before = load(small_folder, cache_dir)
    [old_cache] = cache_dir.glob("*.pt")
    make_image(1, random.Random(5), (40, 44)).save(small_folder / "train" / "class_1" / "new.jpg")
    after = load(small_folder, cache_dir)
    assert len(after.train) == len(before.train) + 1
    assert torch.bincount(after.train.labels)[1] == torch.bincount(before.train.labels)[1] + 1
    assert [path.name for path in cache_dir.glob("*.pt")] != [old_cache.name]
    assert len(list(cache_dir.glob("*.pt"))) == 1 and len(list(cache_dir.glob("*.json"))) == 1


def test_a_replaced_image_is_decoded_again(small_folder, cache_dir):
    before = load(small_folder, cache_dir)
    first, second = (small_folder / "train" / "class_1" / f"img_000{i}.JPEG" for i in (0, 1))
    shutil.copy(second, first)
    after = load(small_folder, cache_dir)
    index = int(torch.nonzero(before.train.labels == 1)[0])  # img_0000 is class_1's first file
    assert torch.equal(after.train.images[index], before.train.images[index + 1])


def test_a_touched_image_rebuilds_the_cache(small_folder, cache_dir):
    load(small_folder, cache_dir)
    [old_cache] = cache_dir.glob("*.pt")
    image = small_folder / "val" / "class_0" / "img_0000.JPEG"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    load(small_folder, cache_dir)
    assert [path.name for path in cache_dir.glob("*.pt")] != [old_cache.name]


def test_a_folder_of_the_same_name_elsewhere_keeps_its_own_cache(tmp_path, cache_dir):
    for parent in ("a", "b"):
        load(
            make_image_folder(
                tmp_path / parent / "images",
                train_per_class=3,
                val_per_class=1,
                seed=len(parent),
                odd_formats=False,
            ),
            cache_dir,
        )
    assert len(list(cache_dir.glob("images-*.pt"))) == 2


def _not_a_torch_file(path: Path) -> None:
    path.write_bytes(b"not a torch file")


# Damaged in place, the file read as a good one: its images trained on as they were
@pytest.mark.parametrize("spoil", [_not_a_torch_file, damage_a_tensor_in_place])
def test_a_corrupt_cache_file_is_rebuilt_with_a_warning(
    small_folder, cache_dir, monkeypatch, spoil
):
    first = load(small_folder, cache_dir)
    [cache_file] = cache_dir.glob("*.pt")
    spoil(cache_file)
    forget_loaded(monkeypatch)
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = load(small_folder, cache_dir)
    assert torch.equal(rebuilt.train.images, first.train.images)
    forget_loaded(monkeypatch)
    monkeypatch.setattr(trainer.decode, "decode_image", refuse_to_decode)
    load(small_folder, cache_dir)  # the rebuilt file is good


def test_a_cache_disk_too_full_for_the_cache_warns_and_the_load_goes_on(
    small_folder, tmp_path, small_disks, monkeypatch
):
    decoded = load(small_folder, tmp_path / "roomy")
    # The cache (52 images of 37 px: 214 kB) does not fit on a 128 kB disk
    full = small_disks.mount(tmp_path / "full", "128k")
    forget_loaded(monkeypatch)
    with pytest.warns(UserWarning, match="image cache not written") as caught:
        data = load(small_folder, full)
    [warning] = [str(item.message) for item in caught]
    assert f"no space in {full} for its 0.000214 GB" in warning and "\n" not in warning
    assert "No space left on device" in warning and "cache_dir" in warning
    assert torch.equal(data.train.images, decoded.train.images)
    assert torch.equal(data.val.labels, decoded.val.labels)
    assert os.listdir(full) == []  # no part of a cache that a later run would trust
    small_disks.grow(full, "4m")
    forget_loaded(monkeypatch)
    load(small_folder, full)  # decoded again, and cached now that there is room
    forget_loaded(monkeypatch)
    monkeypatch.setattr(trainer.decode, "decode_image", refuse_to_decode)
    assert torch.equal(load(small_folder, full).train.images, decoded.train.images)


def test_unreadable_images_are_all_named_before_anything_is_cached(image_folder, cache_dir):
    not_an_image = image_folder / "train" / "class_1" / "notes.jpg"
    not_an_image.write_bytes(b"this is text")
    truncated = image_folder / "val" / "class_2" / "truncated.JPEG"
    whole = (image_folder / "val" / "class_2" / "img_0000.JPEG").read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError) as caught:
        load(image_folder, cache_dir)
    message = str(caught.value)
    assert message.startswith("2 image(s) could not be read")
    assert str(not_an_image) in message and str(truncated) in message and "\n" not in message
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def test_the_cache_is_never_written_inside_the_data_folder(small_folder, cache_dir):
    before = sorted(small_folder.rglob("*"))
    load(small_folder, cache_dir)
    assert sorted(small_folder.rglob("*")) == before
    assert len(list(cache_dir.glob(f"images-{SIDE}px-*.pt"))) == 1
    with pytest.raises(DataError, match="inside the data folder"):
        load(small_folder, small_folder / "cache")


def test_default_locations_follow_the_environment(small_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path / "my-cache"))
    monkeypatch.setenv("HPSEARCH_DATA_ROOT", str(tmp_path / "my-data"))
    assert default_cache_dir() == tmp_path / "my-cache"
    assert default_data_root() == tmp_path / "my-data"
    load_image_data(small_folder, 32, progress=False)
    assert len(list((tmp_path / "my-cache").glob("*.pt"))) == 1


def remove_val(folder: Path) -> None:
    shutil.rmtree(folder / "val")


def remove_class_folders(folder: Path) -> None:
    shutil.rmtree(folder / "train")
    (folder / "train").mkdir()


def add_empty_class(folder: Path) -> None:
    (folder / "train" / "class_9").mkdir()
    shutil.copy(folder / "train" / "class_0" / "img_0000.JPEG", folder / "train" / "class_9")
    (folder / "val" / "class_9").mkdir()


def add_unmatched_classes(folder: Path) -> None:
    for split, name in (("train", "only_in_train"), ("val", "only_in_val")):
        (folder / split / name).mkdir()
        shutil.copy(folder / "train" / "class_0" / "img_0000.JPEG", folder / split / name)


def add_loop_link(folder: Path) -> None:
    # A link back to a folder holding it: os.walk(followlinks=True) would go round it until the
    # path grows too long
    (folder / "train" / "class_1" / "2019").mkdir()
    os.symlink("../..", folder / "train" / "class_1" / "2019" / "back")


def keep_one_class(folder: Path) -> None:
    for split in ("train", "val"):
        for name in ("class_1", "class_2"):
            shutil.rmtree(folder / split / name)


@pytest.mark.parametrize(
    "break_folder, expected",
    [
        (remove_val, ["has no val/ folder", "val/<class>/*"]),
        (keep_one_class, ["holds one class (class_0)", "needs at least 2"]),
        (remove_class_folders, ["holds no class folders", "train"]),
        (
            add_empty_class,
            # removing only val/class_9, as "remove the folder" said, was refused next
            [
                "class folder",
                "val/class_9",
                "holds no images",
                "'class_9' from both train/ and val/",
            ],
        ),
        (add_loop_link, ["class_1/2019/back leads to", "a symlink loop", "remove the link"]),
        (
            add_unmatched_classes,
            ["only in train: ['only_in_train']", "only in val: ['only_in_val']"],
        ),
    ],
)
def test_a_malformed_folder_is_named_before_decoding(
    small_folder, cache_dir, monkeypatch, break_folder, expected
):
    break_folder(small_folder)
    monkeypatch.setattr(trainer.decode, "decode_image", refuse_to_decode)
    with pytest.raises(DataError) as caught:
        load(small_folder, cache_dir)
    message = str(caught.value)
    assert str(small_folder) in message and "\n" not in message
    for part in expected:
        assert part in message


def test_a_missing_folder_is_named_with_the_layout_expected(tmp_path, cache_dir):
    with pytest.raises(DataError, match="does not exist") as caught:
        load(tmp_path / "nowhere", cache_dir)
    assert str(tmp_path / "nowhere") in str(caught.value) and "train/<class>/*" in str(caught.value)


# --- what a search does with the loaded data ------------------------------------------------------


def test_cap_per_class_keeps_the_first_images_of_each_class(data):
    capped = data.cap_per_class(5)
    assert torch.bincount(capped.train.labels).tolist() == [5, 5, 5]
    for label in range(3):
        first_five = data.train.images[data.train.labels == label][:5]
        assert torch.equal(capped.train.images[capped.train.labels == label], first_five)
    assert capped.val is data.val
    assert len(data.cap_per_class(1000).train) == len(data.train)
    with pytest.raises(DataError, match="cap=0"):
        data.cap_per_class(0)


def image_sums(split: ImageSplit) -> list[int]:
    """One number per image (noise makes them distinct), to follow images between splits."""
    return sorted(split.images.flatten(1).long().sum(dim=1).tolist())


def test_holdout_carves_a_stratified_seeded_split_from_train(data):
    counts = torch.bincount(data.train.labels).tolist()  # [20, 16, 16]
    carved = data.holdout(0.25, seed=1)
    assert torch.bincount(carved.val.labels).tolist() == [5, 4, 4]
    assert torch.bincount(carved.train.labels).tolist() == [
        n - c for n, c in zip(counts, [5, 4, 4])
    ]
    # Every training image on exactly one side, none from val
    assert image_sums(
        ImageSplit(torch.cat([carved.train.images, carved.val.images]), carved.train.labels)
    ) == image_sums(data.train)
    again = ImageData(data.classes, data.train, data.val, data.source).holdout(0.25, seed=1)
    assert torch.equal(again.val.images, carved.val.images)
    assert not torch.equal(data.holdout(0.25, seed=2).val.images, carved.val.images)
    assert torch.bincount(data.holdout(0.01, seed=1).val.labels).tolist() == [1, 1, 1]
    assert torch.bincount(data.holdout(0.9, seed=1).train.labels).tolist() == [2, 2, 2]
    for fraction in (0, 1):
        with pytest.raises(DataError, match=f"fraction={fraction}"):
            data.holdout(fraction, seed=1)


def test_a_holdout_that_leaves_a_class_nothing_to_train_on_is_refused(data):
    # 20 images of class_0: 0.99 of them rounds to all 20
    with pytest.raises(
        DataError, match="takes all 20 training images of class 'class_0'"
    ) as caught:
        data.holdout(0.99, seed=1)
    assert "at most 0.95" in str(caught.value)
    assert len(data.holdout(0.95, seed=1).train) == 3
    with pytest.raises(DataError, match="class 'b' has 1 training image"):
        check_holdout({"a": 5, "b": 1}, 0.2)


def test_a_cache_larger_than_the_memory_is_refused_naming_both_sizes():
    with pytest.raises(DataError, match="need 4 GB .* but this machine's memory has 3 GB"):
        check_fits(4 * 10**9, 3 * 10**9, "this machine's memory")
    check_fits(3 * 10**9, 3 * 10**9, "this machine's memory")


def test_loading_checks_the_memory_before_decoding_or_writing(small_folder, cache_dir, monkeypatch):
    # The real check, as on a machine with less memory than 52 images of 37 px take (214 kB)
    monkeypatch.setattr(trainer.data, "_host_memory_available", lambda: 100_000)
    monkeypatch.setattr(trainer.decode, "decode_image", refuse_to_decode)
    with pytest.raises(DataError, match="need 0.000214 GB .* memory has 0.0001 GB available"):
        load(small_folder, cache_dir)
    assert not cache_dir.exists()


def test_fingerprint_describes_the_data_as_json(data):
    fingerprint = data.fingerprint()
    assert fingerprint == {
        "classes": ["class_0", "class_1", "class_2"],
        "train_images": 52,
        "val_images": 18,
        "cache_side": SIDE,
    }
    assert json.loads(json.dumps(fingerprint)) == fingerprint


def test_to_a_device_copies_once_and_is_free_where_the_data_already_is(data):
    assert data.to("cpu") is data
    on_meta = data.to("meta")  # a device without memory stands in for a GPU
    assert on_meta.train.images.device.type == "meta" and on_meta.val.labels.device.type == "meta"
    assert data.to(torch.device("meta")) is on_meta


# --- batches --------------------------------------------------------------------------------------


def epoch(
    split: ImageSplit, seed: int | torch.Generator, **kwargs
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    settings = {"batch_size": 16, "image_size": 32, "min_scale": 0.35, **kwargs}
    return list(train_batches(split, generator=generator, **settings))


def test_train_batches_have_the_network_shape_and_normalised_values(data):
    batches = epoch(data.train, 0)
    assert len(batches) == steps_per_epoch(len(data.train), 16) == 3
    low, high = (0 - MEAN) / STD, (1 - MEAN) / STD
    for images, labels in batches:
        assert (
            images.shape == (16, 3, 32, 32)
            and images.dtype == torch.float32
            and images.is_contiguous()
        )
        assert labels.dtype == torch.int64
        assert (images >= low - 1e-4).all() and (images <= high + 1e-4).all()
    everything = torch.cat([images for images, _ in batches])
    assert -1.5 < everything.mean() < 1.5 and 0.3 < everything.std() < 2


def test_train_batches_keep_each_image_with_its_label(data):
    for images, labels in epoch(data.train, 0):
        colour = pixels(images).mean(dim=(2, 3))
        # Not the grayscale image
        coloured = colour.max(dim=1).values - colour.min(dim=1).values > 5
        assert torch.equal(colour[coloured].argmax(dim=1), labels[coloured])


def test_the_same_seed_repeats_an_epoch_and_the_next_epoch_differs(data):
    first, again = epoch(data.train, 3), epoch(data.train, 3)
    for (images, labels), (images_again, labels_again) in zip(first, again):
        assert torch.equal(images, images_again) and torch.equal(labels, labels_again)
    generator = torch.Generator().manual_seed(3)
    one, two = epoch(data.train, generator), epoch(data.train, generator)
    assert not torch.equal(one[0][0], two[0][0])


def test_every_copy_of_an_image_gets_its_own_crop_and_about_half_are_flipped():
    # dark left half, bright right half
    image = torch.zeros(1, 3, SIDE, SIDE, dtype=torch.uint8)
    image[..., SIDE // 2 :] = 255
    split = ImageSplit(image.repeat(200, 1, 1, 1), torch.zeros(200, dtype=torch.int64))
    [(images, _)] = epoch(split, 0, batch_size=200, min_scale=0.5)
    assert all(not torch.equal(images[0], images[i]) for i in range(1, 200))
    mirrored = images[..., :16].mean(dim=(1, 2, 3)) > images[..., 16:].mean(dim=(1, 2, 3))
    assert 0.35 < mirrored.float().mean() < 0.65


def test_a_split_smaller_than_a_batch_gives_one_smaller_batch(data):
    assert [steps_per_epoch(n, 16) for n in (0, 5, 16, 47, 48)] == [0, 1, 1, 2, 3]
    with pytest.raises(DataError, match="training split of 1 image cannot train"):
        steps_per_epoch(1, 16)  # BatchNorm cannot train on a batch of one
    few = data.train.subset(torch.arange(5))
    [(images, labels)] = epoch(few, 0)
    assert images.shape[0] == labels.shape[0] == 5


def test_eval_batches_are_the_centre_crop_in_order_and_repeat_exactly(data):
    batches = list(eval_batches(data.val, batch_size=7, image_size=32))
    assert [labels.shape[0] for _, labels in batches] == [7, 7, 4]
    images = torch.cat([images for images, _ in batches])
    assert images.dtype == torch.float32 and images.is_contiguous()
    assert torch.equal(torch.cat([labels for _, labels in batches]), data.val.labels)
    start = (SIDE - 32) // 2
    centre = data.val.images[:, :, start : start + 32, start : start + 32].float()
    assert torch.allclose(pixels(images), centre, atol=1e-3)
    again = torch.cat([images for images, _ in eval_batches(data.val, batch_size=7, image_size=32)])
    assert torch.equal(images, again)


def test_batch_settings_out_of_range_are_named(data):
    with pytest.raises(ConfigError, match="min_scale=0"):
        train_batches(
            data.train, batch_size=16, image_size=32, min_scale=0, generator=torch.Generator()
        )
    with pytest.raises(ConfigError, match="batch_size=0"):
        eval_batches(data.val, batch_size=0, image_size=32)
    with pytest.raises(DataError, match="image_size=64"):
        eval_batches(data.val, batch_size=8, image_size=64)
