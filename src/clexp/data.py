"""Read MNIST or Fashion-MNIST once and keep it as a compact array file.

`prepare_dataset` reads the torchvision layout (`<root>/MNIST/raw/*-ubyte`), downloading it when
asked, and returns uint8 images flattened to 784 features with their labels. `save_dataset` /
`load_dataset` write and read the compact `.npz` that every later job loads in milliseconds.

Schema of the `.npz`: `train_images` uint8 (N, 784), `train_labels` int64 (N,),
`eval_images` uint8 (M, 784), `eval_labels` int64 (M,); "eval" is the official test split;
`checksum`: a CRC-32 of the four arrays (`dataset_checksum`), checked on every load.
"""

from __future__ import annotations

import os
import shutil
import zlib
from pathlib import Path

import numpy as np

from clexp.errors import DataError
from clexp.files import atomic_path

IMAGE_SIDE = 28
FEATURES = IMAGE_SIDE * IMAGE_SIDE

# dataset name -> (torchvision class name, folder under the data root)
TORCHVISION_DATASETS = {
    "mnist": ("MNIST", "MNIST"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST"),
}

# file name -> (IDX magic number, bytes per item after the header, header length)
EXPECTED_FILES = {
    "train-images-idx3-ubyte": (2051, FEATURES, 16),
    "train-labels-idx1-ubyte": (2049, 1, 8),
    "t10k-images-idx3-ubyte": (2051, FEATURES, 16),
    "t10k-labels-idx1-ubyte": (2049, 1, 8),
}


def raw_folder(root: str | Path, dataset: str) -> Path:
    """The folder torchvision reads the raw IDX files of `dataset` from."""
    return Path(root) / TORCHVISION_DATASETS[dataset][1] / "raw"


def _missing_message(folder: Path, missing: list[str], reason: str) -> str:
    names = ", ".join(EXPECTED_FILES)
    return (
        f"{reason}: the dataset is not in {folder} (missing: {', '.join(missing)}). "
        f"Put the four uncompressed IDX files ({names}) there, point `data_root` at the folder "
        "that holds them in torchvision's layout (e.g. --config data_root=/path/to/data), "
        "or set `download: true` on a machine with internet access."
    )


def _download(dataset_class, root: str | Path, folder: Path) -> None:
    """Download with torchvision into `root`; on failure remove the folders this attempt
    created (torchvision makes them first) and raise one DataError saying what to do."""
    created = [p for p in (folder, folder.parent, Path(root)) if not p.exists()]
    try:
        dataset_class(str(root), train=True, download=True)
    except Exception as error:  # network errors come in many types
        for path in created:  # innermost first; only folders left empty
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        reason = " ".join(str(error).split())[:300] or "no detail"
        names = ", ".join(EXPECTED_FILES)
        raise DataError(
            f"download into {folder} failed ({type(error).__name__}: {reason}). Without "
            f"network access, copy the four uncompressed IDX files ({names}) into {folder}, or "
            "point `data_root` at a folder that already holds them in torchvision's layout "
            "(see README, Data)."
        ) from None


def check_idx_file(path: Path) -> int:
    """Check one IDX file's header and size; return its number of items.

    Raises DataError naming the file when it is truncated or not the expected IDX file.
    """
    magic, item_bytes, header = EXPECTED_FILES[path.name]
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(header)
    if len(head) < header:
        raise DataError(
            f"{path}: file is truncated ({size} bytes, shorter than its {header}-byte header). "
            "Delete it and download or copy the dataset again."
        )
    found_magic = int.from_bytes(head[0:4], "big")
    count = int.from_bytes(head[4:8], "big")
    if found_magic != magic:
        raise DataError(
            f"{path}: not an IDX file of the expected kind (magic number {found_magic}, "
            f"expected {magic}). Replace it with the original file."
        )
    expected = header + count * item_bytes
    if size != expected:
        raise DataError(
            f"{path}: wrong size ({size} bytes; its header announces {count} items, "
            f"{expected} bytes). The file is truncated or corrupt: download or copy it again."
        )
    return count


def prepare_dataset(
    dataset: str,
    root: str | Path,
    download: bool,
    train_per_class: int | None = None,
    eval_per_class: int | None = None,
) -> dict[str, np.ndarray]:
    """Read `dataset` with torchvision and return the four arrays of the compact file.

    `train_per_class` / `eval_per_class` keep only the first n images of each class (in the
    dataset's order), for quick runs and tests; None keeps everything.
    """
    if dataset not in TORCHVISION_DATASETS:
        raise DataError(
            f"unknown dataset {dataset!r}; choose one of {', '.join(TORCHVISION_DATASETS)}."
        )
    folder = raw_folder(root, dataset)
    missing = [name for name in EXPECTED_FILES if not (folder / name).is_file()]
    if missing and not download:
        raise DataError(_missing_message(folder, missing, "download is off"))

    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, TORCHVISION_DATASETS[dataset][0])
    if missing:
        _download(dataset_class, root, folder)
    for name in EXPECTED_FILES:
        check_idx_file(folder / name)

    arrays = {}
    for split, train in (("train", True), ("eval", False)):
        data = dataset_class(str(root), train=train, download=False)
        images = data.data.numpy().reshape(len(data.data), FEATURES).astype(np.uint8)
        labels = data.targets.numpy().astype(np.int64)
        per_class = train_per_class if train else eval_per_class
        if per_class is not None:
            keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
            keep.sort()
            images, labels = images[keep], labels[keep]
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels
    return arrays


def kept_dataset_name(dataset: str, train_per_class: int | None,
                      eval_per_class: int | None) -> str:
    """File name of the kept copy of a dataset file: what its content depends on."""
    def count(n):
        return "all" if n is None else str(n)

    return f"{dataset}-train{count(train_per_class)}-eval{count(eval_per_class)}.npz"


def write_dataset_file(
    path: str | Path,
    dataset: str,
    root: str | Path,
    download: bool,
    train_per_class: int | None = None,
    eval_per_class: int | None = None,
    keep_dir: str | Path | None = None,
) -> str:
    """Write the compact dataset file at `path` and return a line saying where it came from.

    With `keep_dir`, a hard link (or copy) of every file written is kept there under a name
    made of the dataset and the subset (`kept_dataset_name`). A workflow deletes `path`
    before it rebuilds it; if the raw files cannot be had then (download off or failing), the
    kept file of the same dataset and subset is used, so a failed or offline rebuild never
    loses a good dataset file. Without a kept file the DataError is raised as it is.
    """
    path = Path(path)
    kept = Path(keep_dir) / kept_dataset_name(dataset, train_per_class, eval_per_class) \
        if keep_dir is not None else None
    try:
        arrays = prepare_dataset(dataset, root, download, train_per_class, eval_per_class)
    except DataError as error:
        if kept is None or not kept.is_file():
            raise
        load_dataset(kept)  # a damaged kept file must not replace a missing one silently
        with atomic_path(path) as temporary:
            _link_or_copy(kept, temporary)
        reason = str(error).split(" (")[0]
        return (f"{dataset}: {reason}; using {kept}, written earlier from the same dataset "
                "and subset")
    save_dataset(arrays, path)
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(kept) as temporary:
            _link_or_copy(path, temporary)
    return (f"{dataset}: {len(arrays['train_labels'])} training and "
            f"{len(arrays['eval_labels'])} evaluation images from {raw_folder(root, dataset)}")


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links
        shutil.copyfile(source, target)


CHECKSUM_KEY = "checksum"


def dataset_checksum(arrays: dict[str, np.ndarray]) -> str:
    """CRC-32 of the arrays' names, dtypes, shapes and bytes (the file's contents, not its zip
    container, so a rewritten file with the same arrays has the same checksum).

    It detects damage, which is its purpose; it cannot prove authorship (no checksum stored in
    the file itself could), so a cryptographic hash would only cost time on every load (0.2 s
    against 0.07 s for the full MNIST file on a small machine).
    """
    value = 0
    for name in sorted(arrays):
        if name == CHECKSUM_KEY:
            continue
        array = np.ascontiguousarray(arrays[name])
        value = zlib.crc32(f"{name}:{array.dtype.str}:{array.shape}:".encode(), value)
        value = zlib.crc32(array.data, value)
    return f"crc32:{value:08x}"


def save_dataset(arrays: dict[str, np.ndarray], path: str | Path) -> None:
    """Write the compact dataset file (uncompressed `.npz`, so it loads without decoding),
    with the checksum of its arrays."""
    contents = dict(arrays)
    contents[CHECKSUM_KEY] = np.array(dataset_checksum(arrays))
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **contents)


def _damaged(path: Path, problem: str) -> DataError:
    return DataError(
        f"{path}: the dataset file is damaged ({problem}). Delete it and rerun the workflow, "
        "which rebuilds it (a run of the workflow also replaces a damaged dataset file by "
        "itself)."
    )


def load_dataset(path: str | Path) -> dict[str, np.ndarray]:
    """Load the compact dataset file written by `save_dataset` and verify its checksum.

    Raises DataError naming the file (one line, saying to delete it) when the file is
    truncated or altered.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except Exception as error:  # zipfile, numpy and OS errors: all mean "unreadable"
        message = str(error).splitlines()[0] if str(error) else ""
        raise _damaged(path, f"{type(error).__name__}: {message}".rstrip(": ")) from None
    recorded = arrays.pop(CHECKSUM_KEY, None)
    # A file written before checksums existed is still covered by the zip's CRC-32 of each
    # array (checked while reading); accepting it spares a finished study a full rerun.
    if recorded is not None and str(recorded) != dataset_checksum(arrays):
        raise _damaged(path, "its contents do not match their checksum")
    return arrays


def dataset_is_intact(path: str | Path) -> bool:
    """Whether `path` loads and matches its checksum (False when damaged, True when absent)."""
    try:
        load_dataset(path)
    except DataError:  # (a FileNotFoundError too: caught first)
        return False
    except FileNotFoundError:
        return True
    return True


def class_mask(labels: np.ndarray, classes) -> np.ndarray:
    """Boolean mask of the items whose label is in `classes`."""
    return np.isin(labels, np.asarray(list(classes), dtype=labels.dtype))


def balanced_subset(labels: np.ndarray, classes, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of up to `per_class` items of each class in `classes`, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in classes:
        members = np.flatnonzero(labels == cls)
        chosen.append(rng.permutation(members)[:per_class])
    indices = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    return np.sort(indices)


def fixed_sample(labels: np.ndarray, classes, count: int, seed: int) -> np.ndarray:
    """Sorted indices of `count` items spread evenly over `classes`, drawn with `seed`.

    Each class gets `count // len(classes)` items, the first `count % len(classes)` classes
    one more (fewer where a class has fewer items). A class's items are taken in an order
    drawn from (`seed`, class) alone, so a class contributes the same items to every sample
    that holds it: a run shows the same images after every task.
    """
    classes = [int(c) for c in classes]
    if not classes or count <= 0:
        return np.zeros(0, dtype=np.int64)
    share, extra = divmod(int(count), len(classes))
    chosen = []
    for position, cls in enumerate(classes):
        members = np.flatnonzero(labels == cls)
        order = np.random.default_rng([int(seed), cls]).permutation(members)
        chosen.append(order[: share + (position < extra)])
    return np.sort(np.concatenate(chosen)).astype(np.int64)
