"""Image folders decoded once into a uint8 tensor cache that stays loaded across trainings.

A data set is a folder holding train/<class>/* and val/<class>/* (the layout of the Imagenette
archives), a .tar.gz of such a folder, or an Imagenette name that torchvision downloads. Each
image is decoded once, its shorter side resized to the cache side S and centre-cropped to S x S;
`trainer.augment` crops image_size squares from those on the training device, so no trial
decodes a JPEG again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import psutil
import torch

from trainer.cache_files import (
    cache_prefix,
    labels_of,
    read_cache,
    remove_abandoned_writes,
    remove_stale_caches,
    write_cache,
)
from trainer.decode import decode_all
from trainer.errors import DataError
from trainer.listing import Listing, scan_folder, scan_val
from trainer.naming import named
from trainer.outputs import check_output_folder
from trainer.sources import env_path, resolve_data_dir

# Part of the manifest, so changing what a cache holds rebuilds old caches (2: photos turned upright
# as their EXIF orientation says)
CACHE_FORMAT = 2

# One loaded cache per (folder, cache side), so a worker's
# trials share it: value (manifest digest, data).
_LOADED: dict[tuple[str, int], tuple[str, ImageData]] = {}

# The caller's look at a folder's listing before any image is decoded: it raises to refuse it
Check = Callable[[Listing], None]


@dataclass(frozen=True, eq=False)
class ImageSplit:
    """The images of one split as uint8 (N, 3, S, S) with their int64 labels, on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __repr__(self) -> str:
        return (
            f"ImageSplit({len(self)} images of {self.images.shape[-1]} px on {self.images.device})"
        )

    def to(self, device: torch.device | str) -> ImageSplit:
        return ImageSplit(self.images.to(device), self.labels.to(device))

    def subset(self, indices: torch.Tensor) -> ImageSplit:
        indices = indices.to(self.images.device)
        return ImageSplit(
            self.images.index_select(0, indices), self.labels.index_select(0, indices)
        )


@dataclass(frozen=True, eq=False)
class ImageData:
    """A data set's classes with its training and validation images; `source` is its folder."""

    classes: tuple[str, ...]
    train: ImageSplit
    val: ImageSplit
    source: str
    # Device copies and carved splits, kept so that repeated trials in one worker reuse them.
    _derived: dict[tuple[Any, ...], ImageData] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def cache_side(self) -> int:
        return self.train.images.shape[-1]

    def to(self, device: torch.device | str) -> ImageData:
        device = _canonical_device(device)
        if self.train.images.device == device:
            return self
        return self._memo(("to", str(device)), lambda: self._copied_to(device))

    def _copied_to(self, device: torch.device) -> ImageData:
        if device.type == "cuda":
            cache_bytes = self.train.images.nbytes + self.val.images.nbytes
            check_fits(cache_bytes, torch.cuda.mem_get_info(device)[0], f"{device}")
        return self._with(self.train.to(device), self.val.to(device))

    def fingerprint(self) -> dict[str, Any]:
        """What a result depends on in the data, for recording beside it."""
        return {
            "classes": list(self.classes),
            "train_images": len(self.train),
            "val_images": len(self.val),
            "cache_side": self.cache_side,
        }

    def cap_per_class(self, cap: int) -> ImageData:
        """Keep the first `cap` training images of each
        class (in folder order); val is unchanged."""
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise DataError(
                f"cap_per_class needs a whole number of images >= 1, but got cap={cap!r}"
            )
        return self._memo(
            ("cap", cap),
            lambda: self._with(
                self.train.subset(_first_per_class(self.train.labels, cap)), self.val
            ),
        )

    def holdout(self, fraction: float, seed: int) -> ImageData:
        """Carve a stratified validation split from train; the official val is left out entirely.

        Tuning against the split that reports the final accuracy would overstate it, so a search
        can tune on a holdout and keep val for the end.
        """
        labels = self.train.labels.cpu()
        check_holdout(
            {name: int((labels == label).sum()) for label, name in enumerate(self.classes)},
            fraction,
        )
        return self._memo(("holdout", fraction, seed), lambda: self._carve(fraction, seed))

    def _carve(self, fraction: float, seed: int) -> ImageData:
        carved, kept = _stratified_split(self.train.labels.cpu(), self.classes, fraction, seed)
        return self._with(self.train.subset(kept), self.train.subset(carved))

    def _memo(self, key: tuple[Any, ...], make: Callable[[], ImageData]) -> ImageData:
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def _with(self, train: ImageSplit, val: ImageSplit) -> ImageData:
        return ImageData(self.classes, train, val, self.source)


def _canonical_device(device: torch.device | str) -> torch.device:
    # "cuda" and "cuda:0" name the same device, and a tensor reports the indexed name.
    return torch.empty(0, device=device).device


def _first_per_class(labels: torch.Tensor, cap: int) -> torch.Tensor:
    labels = labels.cpu()
    keep = [torch.nonzero(labels == label).flatten()[:cap] for label in labels.unique()]
    return torch.cat(keep).sort().values


def _stratified_split(
    labels: torch.Tensor, classes: tuple[str, ...], fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(carved, kept) indices: `carved_count` of each class's images (check_holdout first)."""
    generator = torch.Generator().manual_seed(seed)
    carved, kept = [], []
    for label in range(len(classes)):
        members = torch.nonzero(labels == label).flatten()
        count = carved_count(len(members), fraction)
        shuffled = members[torch.randperm(len(members), generator=generator)]
        carved.append(shuffled[:count])
        kept.append(shuffled[count:])
    return torch.cat(carved).sort().values, torch.cat(kept).sort().values


def carved_count(images: int, fraction: float) -> int:
    """How many of a class's training images a holdout of `fraction` takes: at least one."""
    return max(1, round(fraction * images))


def check_holdout(counts: Mapping[str, int], fraction: float) -> None:
    """A holdout of `fraction` must leave every class (its training image `counts`, by name) an
    image to validate on and one to train on; checked on a folder's listing before decoding too."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise DataError(f"holdout fraction must be in (0, 1), but got fraction={fraction!r}")
    for name, count in counts.items():
        if count < 2:
            raise DataError(
                f"class {name!r} has {count} training image(s), but a holdout needs at least 2 "
                "per class (one to validate on, one to train on); add images or use the "
                "official val split"
            )
        if carved_count(count, fraction) >= count:
            raise DataError(
                f"a holdout of fraction={fraction:g} takes all {count} training images of class "
                f"{name!r}, leaving none to train on; use a fraction of at most "
                f"{(count - 1) / count:.2g} or add images"
            )


# --- where things live ---------------------------------------------------------------------------


def cache_side(image_size: int) -> int:
    """Side of the cached squares: evaluation takes the centre image_size crop (87.5%, like
    torchvision's 224 of 256), training crops randomly from the whole side."""
    if image_size < 1:
        raise DataError(f"image_size must be at least 1 px, but got image_size={image_size}")
    return -(-image_size * 8 // 7)


def check_fits(cache_bytes: int, available_bytes: int, where: str) -> None:
    """Refuse a decoded cache larger than the memory that could hold it (the host's, where it is
    decoded or read; a GPU's, where it trains): allocating it fails after the folder is listed, or
    swaps for minutes first. The model and batches need memory too; this catches the impossible."""
    if cache_bytes > available_bytes:
        raise DataError(
            f"the decoded images need {_gigabytes(cache_bytes)} (uint8, 3 x side x side each, the "
            f"side 8/7 of image_size), but {where} has {_gigabytes(available_bytes)} available; "
            "lower image_size, or use fewer images"
        )


def _gigabytes(size: int) -> str:
    return f"{size / 1e9:.3g} GB"


def _host_memory_available() -> int:
    # psutil's estimate of what can be had without swapping (free plus reclaimable page cache)
    return psutil.virtual_memory().available


def default_cache_dir() -> Path:
    return (
        env_path("HPSEARCH_CACHE_DIR") or Path(platformdirs.user_cache_dir("hpsearch")) / "images"
    )


# --- what a cache is built from ------------------------------------------------------------------


def _manifest(folder: Path, side: int, listing: Listing) -> dict[str, Any]:
    """What a cache is built from; any added, removed or rewritten file changes its digest.

    The change time too, as git's index keeps it: `cp -p`, `rsync -a` and tar put back the
    modification time of a file they replace, and an image of fixed size (BMP, PPM, TIFF) then
    looked unchanged; no call sets the change time, so every write or replacement moves it."""
    files = []
    for relative, _ in listing.train + listing.val:
        stat = (folder / relative).stat()
        files.append([relative, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns])
    return {
        "format": CACHE_FORMAT,
        "folder": str(folder),
        "side": side,
        "classes": list(listing.classes),
        "files": files,
    }


def _digest(manifest: dict[str, Any]) -> str:
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- loading --------------------------------------------------------------------------------------


def load_image_data(
    data: str | Path,
    image_size: int,
    *,
    cache_dir: Path | None = None,
    data_root: Path | None = None,
    progress: bool = True,
    check: Callable[[Listing], None] | None = None,
) -> ImageData:
    """The data set at `data` for `image_size`: from memory, from the cache, or decoded now.

    `check` is the caller's look at what the folder holds (its classes and image files), before
    any image is decoded or a cache is read or written: it raises to refuse them.
    """
    side = cache_side(image_size)
    folder = resolve_data_dir(data, data_root=data_root, progress=progress)
    listing = scan_folder(folder)
    if check is not None:
        check(listing)
    manifest = _manifest(folder, side, listing)
    digest = _digest(manifest)
    cache_dir = (
        (Path(cache_dir) if cache_dir is not None else default_cache_dir()).expanduser().resolve()
    )
    if cache_dir.is_relative_to(folder):
        raise DataError(
            f"cache folder {cache_dir} is inside the data folder {folder}; "
            "put the cache elsewhere (the data folder may be read-only or shared)"
        )
    loaded = _LOADED.get((str(folder), side))
    if loaded is not None and loaded[0] == digest:
        return loaded[1]
    image_count = len(listing.train) + len(listing.val)
    check_fits(image_count * 3 * side * side, _host_memory_available(), "this machine's memory")
    cache_path = cache_dir / f"{cache_prefix(folder, side)}{digest}.pt"
    remove_abandoned_writes(cache_dir)
    tensors = read_cache(cache_path, listing, side) if cache_path.exists() else None
    if tensors is None:
        # Before decoding what it could not keep
        check_output_folder(cache_dir, f"cache folder ({named('cache_dir')}, $HPSEARCH_CACHE_DIR)")
        tensors = _build_cache(cache_path, folder, listing, manifest, progress)
    image_data = ImageData(
        listing.classes,
        ImageSplit(tensors["train_images"], tensors["train_labels"]),
        ImageSplit(tensors["val_images"], tensors["val_labels"]),
        str(folder),
    )
    _LOADED[(str(folder), side)] = (digest, image_data)
    return image_data


def load_val_data(
    data: str | Path, image_size: int, *, cache_dir: Path | None, progress: bool, check: Check
) -> ImageData:
    """The val split of `data` for scoring (`check` as in load_image_data): the whole data set where
    it is kept already, else val/ alone decoded now, its train split empty and nothing cached (it is
    not the whole); train/ may then be missing or hold anything, as a user's own test set may."""
    side = cache_side(image_size)
    folder = resolve_data_dir(data, progress=progress)
    if _whole_is_kept(folder, side, cache_dir):
        return load_image_data(
            folder, image_size, cache_dir=cache_dir, progress=progress, check=check
        )
    listing = scan_val(folder)
    check(listing)
    check_fits(len(listing.val) * 3 * side**2, _host_memory_available(), "this machine's memory")
    images = decode_all([folder / relative for relative, _ in listing.val], side, progress)
    val = ImageSplit(images, labels_of(listing.val))
    return ImageData(listing.classes, ImageSplit(images[:0], labels_of([])), val, str(folder))


def _whole_is_kept(folder: Path, side: int, cache_dir: Path | None) -> bool:
    """Whether the whole data set is in memory, or cached (by a search or `train`) and fits it."""
    try:
        listing = scan_folder(folder)
    except DataError:  # train/ missing, or not matching val/: no cache of the whole can exist
        return False
    digest = _digest(_manifest(folder, side, listing))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache.expanduser().resolve() / f"{cache_prefix(folder, side)}{digest}.pt"
    in_memory = _LOADED.get((str(folder), side), ("", None))[0] == digest
    whole_bytes = (len(listing.train) + len(listing.val)) * 3 * side**2  # val/ alone may fit
    return in_memory or (path.exists() and whole_bytes <= _host_memory_available())


def _build_cache(
    path: Path, folder: Path, listing: Listing, manifest: dict[str, Any], progress: bool
) -> dict[str, torch.Tensor]:
    images = decode_all(
        [folder / relative for relative, _ in listing.train + listing.val],
        manifest["side"],
        progress,
    )
    count = len(listing.train)
    # Views of one storage: torch.save writes it once, and no copy doubles the memory.
    tensors = {
        "train_images": images[:count],
        "train_labels": labels_of(listing.train),
        "val_images": images[count:],
        "val_labels": labels_of(listing.val),
    }
    # First: the caches of the folder's earlier states are what most often fills the disk
    remove_stale_caches(path, folder, manifest["side"])
    write_cache(path, tensors, manifest)
    return tensors
