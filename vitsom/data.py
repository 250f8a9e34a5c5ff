"""Dataset loading for the ViT-SOM reproduction.

Small sets (MNIST, Fashion-MNIST, USPS, CIFAR-10/100, SVHN, PathMNIST) are read
from their original on-disk formats into memory as uint8 tensors
(:func:`load_arrays`); JPEG folders (Flowers17, Tiny-ImageNet) are read lazily
(:func:`load_image_dataset`). Files are looked up under :func:`data_root`; nothing
is cached except extracted archives. See ``data/README.md`` for the layouts.
"""
from __future__ import annotations

import bz2
import gzip
import os
import pickle
import shutil
import tarfile
import zlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["DataNotFoundError", "DataCorruptError", "ImageArrays", "DatasetSpec", "DATASETS", "data_root",
           "get_spec", "load_arrays", "load_image_dataset", "classification_splits", "build_transforms",
           "ArrayDataset", "ImageFileDataset"]

Transform = Callable[[Any], Any] | None


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the searched places."""


class DataCorruptError(ValueError):
    """A dataset file exists but does not have the expected content."""


@dataclass
class ImageArrays:
    """An in-memory image dataset: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    classes: int

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be int64 ({self.images.shape[0]},), "
                             f"got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, idx: Any) -> "ImageArrays":
        """The images and labels at ``idx`` (slice, index list/array/tensor or bool mask)."""
        idx = _as_index(idx)
        return ImageArrays(self.images[idx], self.labels[idx], self.name, self.classes)

    def float_batch(self, idx: Any) -> torch.Tensor:
        """``images[idx]`` as float32 in [0, 1]."""
        return self.images[_as_index(idx)].float().div_(255.0)


def _as_index(idx: Any) -> Any:
    if isinstance(idx, (slice, torch.Tensor)):
        return idx
    if isinstance(idx, (int, np.integer)):
        return [int(idx)]
    arr = np.asarray(idx)
    return torch.as_tensor(arr if arr.dtype == bool else arr.astype(np.int64))


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset. ``image_size`` is the model input size."""

    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_memory: bool
    how_to_get: str
    url: str = ""
    val_fraction: float = 0.2  # share of the official train split held out for validation


_IMNET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_GREY = ((0.5,), (0.5,))
_TV = "pass download=True (fetched with torchvision from {url})"


def _spec(*args: Any, **kw: Any) -> DatasetSpec:
    s = DatasetSpec(*args, **kw)
    return dataclasses.replace(s, how_to_get=s.how_to_get.replace("{url}", s.url))


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in [
    _spec("mnist", 10, 1, 28, *_GREY, True, _TV + ", or copy the four IDX files "
                "({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]) into <root>/mnist/",
                "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    _spec("fmnist", 10, 1, 28, *_GREY, True, _TV + ", or copy the four IDX files into <root>/fashion-mnist/",
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    _spec("usps", 10, 1, 16, *_GREY, True, _TV + " (LIBSVM usps.bz2/usps.t.bz2), or copy usps.h5 "
                "(groups train/test with data, target) into <root>/usps/",
                "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass.html#usps"),
    _spec("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), True,
                _TV + ", or extract cifar-10-python.tar.gz into <root>/",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    _spec("cifar100", 100, 3, 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), True,
                _TV + ", or extract cifar-100-python.tar.gz into <root>/",
                "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
    _spec("svhn", 10, 3, 32, *_IMNET, True, _TV + ", or copy train_32x32.mat and test_32x32.mat "
                "into <root>/svhn/", "http://ufldl.stanford.edu/housenumbers/"),
    _spec("pathmnist", 9, 3, 28, (0.5,) * 3, (0.5,) * 3, True,
                "pass download=True (fetched with the medmnist package from {url}), or copy pathmnist.npz "
                "into <root>/medmnist/", "https://zenodo.org/records/10519652"),
    _spec("flowers17", 17, 3, 224, *_IMNET, False, "pass download=True, or download {url} by hand and "
                "put it at <root>/17flowers.tgz (it is extracted to <root>/17flowers/jpg/ on first use)",
                "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz"),
    _spec("tinyimagenet", 200, 3, 64, *_IMNET, False, "pass download=True, or download {url} by hand "
                "and unzip it into <root>/ (giving <root>/tiny-imagenet-200/)",
                "http://cs231n.stanford.edu/tiny-imagenet-200.zip", val_fraction=0.1),
]}
_ALIASES = {"fashion-mnist": "fmnist", "cifar-10": "cifar10", "cifar-100": "cifar100", "flowers-17": "flowers17",
            "tiny-imagenet": "tinyimagenet", "medmnist": "pathmnist"}
_SPLITS = ("train", "test", "all")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$VITSOM_DATA``, else ``<repo>/data``."""
    if root is None:
        root = os.environ.get("VITSOM_DATA") or Path(__file__).resolve().parent.parent / "data"
    return Path(root).expanduser()


def get_spec(name: str) -> DatasetSpec:
    """Spec by name or alias (case-insensitive, ``_`` = ``-``)."""
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)} "
                         f"(aliases: {', '.join(_ALIASES)})")
    return DATASETS[key]


def _parts(split: str) -> list[str]:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    return ["train", "test"] if split == "all" else [split]


def _not_found(spec: DatasetSpec, root: Path, searched: Sequence[Any]) -> DataNotFoundError:
    paths = "\n".join(f"  - {p}" for p in searched)
    return DataNotFoundError(
        f"dataset {spec.name!r} not found under data root {root}. Searched:\n{paths}\n"
        f"To fix: set VITSOM_DATA=/path/to/data (or pass root=...) to point at a folder holding it, or "
        f"{spec.how_to_get.replace('<root>', str(root))}.")


def _corrupt(path: Any, what: str) -> DataCorruptError:
    return DataCorruptError(f"{path}: {what}. Delete the file and download it again (see data/README.md).")


def _locate(spec: DatasetSpec, root: Path, dirs: Sequence[Path], names: Sequence[str], download: bool,
            fetch: Callable[[Path], None] | None, gz: bool = False, also: Sequence[Path] = ()) -> dict[str, Path]:
    """The first of ``dirs`` holding every file in ``names``; maybe fetch once; else DataNotFoundError."""
    def find() -> dict[str, Path] | None:
        for d in dirs:
            found = {}
            for n in names:
                hit = next((p for p in ([d / n, d / f"{n}.gz"] if gz else [d / n]) if p.is_file()), None)
                if hit is not None:
                    found[n] = hit
            if len(found) == len(names):
                return found
        return None
    found = find()
    failure = ""
    if found is None and download and fetch is not None:
        try:
            root.mkdir(parents=True, exist_ok=True)
            fetch(root)
        except Exception as e:  # noqa: BLE001 - offline, HTTP error, checksum: say so, don't crash deep
            failure = f" (the automatic download failed: {type(e).__name__}: {str(e).splitlines()[0][:200]})"
        found = find()
    if found is None:
        sfx = "[.gz]" if gz else ""
        err = _not_found(spec, root, [*also, *(f"{d / n}{sfx}" for d in dirs for n in names)])
        raise DataNotFoundError(str(err) + failure)
    return found


# ---------------------------------------------------------------- file readers
def _read_idx(path: Path, magic: int) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise _corrupt(path, f"bad or truncated gzip data ({e})") from e
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != magic:
        got = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else "none"
        raise _corrupt(path, f"bad IDX magic number {got} (expected {magic})")
    ndim, head = raw[3], 4 + 4 * raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims))
    if len(raw) < head or len(raw) - head != count:
        raise _corrupt(path, f"truncated or wrong-size IDX file: header says {dims} = {count} bytes, "
                             f"file holds {max(len(raw) - head, 0)}")
    return np.frombuffer(raw, np.uint8, count, head).reshape(dims)


def _read_libsvm(path: Path, dim: int = 256) -> tuple[np.ndarray, np.ndarray]:
    try:
        rows = [ln.split() for ln in bz2.decompress(path.read_bytes()).decode("ascii").splitlines() if ln.strip()]
        x, y = np.zeros((len(rows), dim), np.float32), np.zeros(len(rows), np.int64)
        for i, row in enumerate(rows):
            y[i] = int(float(row[0]))
            for tok in row[1:]:
                k, v = tok.split(":")
                x[i, int(k) - 1] = float(v)
    except (OSError, EOFError, ValueError, IndexError) as e:
        raise _corrupt(path, f"not a readable bz2 LIBSVM file ({e})") from e
    if x.min(initial=0) < -1.001 or x.max(initial=0) > 1.001:
        raise _corrupt(path, "pixel values outside [-1, 1]")
    return np.round((x + 1) * 127.5).clip(0, 255).astype(np.uint8).reshape(-1, 1, 16, 16), y - 1


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as e:  # pickle raises many types on bad input
        raise _corrupt(path, f"not a readable Python pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise _corrupt(path, f"expected a pickled dict, got {type(obj).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _get(mapping: Any, key: str, path: Path) -> Any:
    try:
        return mapping[key]
    except (KeyError, ValueError) as e:
        raise _corrupt(path, f"missing key {key!r}") from e


# ---------------------------------------------------------------- in-memory loaders
Parts = list[tuple[np.ndarray, np.ndarray, Any]]  # (images NCHW, labels, source) per split part


def _load_idx_set(spec: DatasetSpec, root: Path, parts: list[str], download: bool) -> Parts:
    tv_dir = "MNIST" if spec.name == "mnist" else "FashionMNIST"
    dirs = [root / ("mnist" if spec.name == "mnist" else "fashion-mnist"), root / tv_dir / "raw"]
    pre = {"train": "train", "test": "t10k"}
    names = [f"{pre[p]}-{k}" for p in parts for k in ("images-idx3-ubyte", "labels-idx1-ubyte")]

    def fetch(r: Path) -> None:
        from torchvision import datasets
        getattr(datasets, tv_dir)(str(r), train=True, download=True)

    found = _locate(spec, root, dirs, names, download, fetch, gz=True)
    out = []
    for p in parts:
        img, lab = found[f"{pre[p]}-images-idx3-ubyte"], found[f"{pre[p]}-labels-idx1-ubyte"]
        out.append((_read_idx(img, 2051)[:, None], _read_idx(lab, 2049), f"{img} / {lab}"))
    return out


def _load_usps(spec: DatasetSpec, root: Path, parts: list[str], download: bool) -> Parts:
    h5_paths = [root / "usps" / "usps.h5", root / "usps.h5"]
    h5 = next((p for p in h5_paths if p.is_file()), None)
    if h5 is None:  # torchvision's LIBSVM files
        names = {"train": "usps.bz2", "test": "usps.t.bz2"}

        def fetch(r: Path) -> None:
            from torchvision import datasets
            for train in (True, False):
                datasets.USPS(str(r / "usps"), train=train, download=True)

        found = _locate(spec, root, [root / "usps", root], [names[p] for p in parts], download, fetch, also=h5_paths)
        return [(*_read_libsvm(found[names[p]]), found[names[p]]) for p in parts]
    import h5py
    out = []
    try:
        with h5py.File(h5, "r") as f:
            for p in parts:
                x = np.asarray(_get(f, f"{p}/data", h5)[()], np.float32)
                y = np.asarray(_get(f, f"{p}/target", h5)[()])
                if x.ndim != 2 or x.shape[1] != 256:
                    raise _corrupt(h5, f"{p}/data has shape {x.shape}, expected (N, 256)")
                if x.size and (x.min() < -1e-4 or x.max() > 1 + 1e-4):
                    raise _corrupt(h5, f"{p}/data values outside [0, 1]")
                if not np.array_equal(y, np.round(y)):
                    raise _corrupt(h5, f"{p}/target holds non-integer labels")
                img = np.round(x * 255).clip(0, 255).astype(np.uint8).reshape(-1, 1, 16, 16)
                out.append((img, y.astype(np.int64).reshape(-1), h5))
    except OSError as e:
        raise _corrupt(h5, f"not a readable HDF5 file ({e})") from e
    return out


def _load_cifar(spec: DatasetSpec, root: Path, parts: list[str], download: bool) -> Parts:
    ten = spec.name == "cifar10"
    d = root / ("cifar-10-batches-py" if ten else "cifar-100-python")
    files = {"train": [f"data_batch_{i}" for i in range(1, 6)] if ten else ["train"],
             "test": ["test_batch" if ten else "test"]}

    def fetch(r: Path) -> None:
        from torchvision import datasets
        (datasets.CIFAR10 if ten else datasets.CIFAR100)(str(r), train=True, download=True)

    found = _locate(spec, root, [d], [n for p in parts for n in files[p]], download, fetch)
    out = []
    for p in parts:
        xs, ys = [], []
        for n in files[p]:
            path = found[n]
            batch = _unpickle(path)
            x = np.asarray(_get(batch, "data", path))
            y = np.asarray(_get(batch, "labels" if ten else "fine_labels", path))
            if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or y.shape != (x.shape[0],):
                raise _corrupt(path, f"data {x.dtype} {x.shape} / labels {y.shape}; expected uint8 (N, 3072) / (N,)")
            xs.append(x.reshape(-1, 3, 32, 32))
            ys.append(y)
        out.append((np.concatenate(xs), np.concatenate(ys), d))
    return out


def _load_svhn(spec: DatasetSpec, root: Path, parts: list[str], download: bool) -> Parts:
    def fetch(r: Path) -> None:
        from torchvision import datasets
        for p in ("train", "test"):
            datasets.SVHN(str(r / "svhn"), split=p, download=True)

    found = _locate(spec, root, [root / "svhn", root], [f"{p}_32x32.mat" for p in parts], download, fetch)
    import scipy.io
    out = []
    for p in parts:
        path = found[f"{p}_32x32.mat"]
        try:
            mat = scipy.io.loadmat(path)
        except Exception as e:  # scipy raises assorted types on bad files
            raise _corrupt(path, f"not a readable MATLAB file ({type(e).__name__}: {e})") from e
        x, y = np.asarray(_get(mat, "X", path)), np.asarray(_get(mat, "y", path)).reshape(-1).astype(np.int64)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
            raise _corrupt(path, f"X is {x.dtype} {x.shape}, y has {y.shape[0]} labels; expected uint8 (32, 32, 3, N)")
        y[y == 10] = 0  # SVHN stores digit 0 as label 10
        out.append((x.transpose(3, 2, 0, 1), y, path))
    return out


def _load_pathmnist(spec: DatasetSpec, root: Path, parts: list[str], download: bool) -> Parts:
    def fetch(r: Path) -> None:
        import medmnist
        (r / "medmnist").mkdir(parents=True, exist_ok=True)
        medmnist.PathMNIST(split="train", download=True, root=str(r / "medmnist"))

    path = _locate(spec, root, [root, root / "medmnist"], ["pathmnist.npz"], download, fetch)["pathmnist.npz"]
    out = []
    try:
        with np.load(path, allow_pickle=False) as z:
            for p in parts:
                x, y = np.asarray(_get(z, f"{p}_images", path)), np.asarray(_get(z, f"{p}_labels", path))
                if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
                    raise _corrupt(path, f"{p}_images is {x.dtype} {x.shape}, expected uint8 (N, 28, 28, 3)")
                out.append((x.transpose(0, 3, 1, 2), y.reshape(-1).astype(np.int64), path))
    except DataCorruptError:
        raise
    except Exception as e:  # BadZipFile, OSError, EOFError, a plain .npy file, ...
        raise _corrupt(path, f"not a readable .npz file ({type(e).__name__}: {e})") from e
    return out


_ARRAY_LOADERS = {"mnist": _load_idx_set, "fmnist": _load_idx_set, "usps": _load_usps, "cifar10": _load_cifar,
                  "cifar100": _load_cifar, "svhn": _load_svhn, "pathmnist": _load_pathmnist}


def load_arrays(name: str, split: str = "all", root: str | os.PathLike | None = None,
                download: bool = False) -> ImageArrays:
    """Load an in-memory dataset. ``split='all'`` is train followed by test (the clustering protocol)."""
    spec = get_spec(name)
    if not spec.in_memory:
        raise ValueError(f"{spec.name} is a folder of JPEG files; use load_image_dataset({spec.name!r}, ...)")
    parts = _parts(split)
    chunks = _ARRAY_LOADERS[spec.name](spec, data_root(root), parts, download)
    size = (spec.channels, spec.image_size, spec.image_size)
    for x, y, src in chunks:
        if x.ndim != 4 or x.shape[1:] != size or len(x) != len(y):
            raise DataCorruptError(f"{src}: images {x.shape} / labels {y.shape}, expected (N, {', '.join(map(str, size))}) / (N,). "
                                   "Delete the files and download them again.")
        if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
            raise DataCorruptError(f"{src}: labels span {y.min()}..{y.max()}, expected 0..{spec.num_classes - 1}. "
                                   "Delete the files and download them again.")
    images = torch.from_numpy(np.concatenate([c[0] for c in chunks]))
    labels = torch.from_numpy(np.concatenate([c[1] for c in chunks]).astype(np.int64))
    return ImageArrays(images, labels, spec.name, spec.num_classes)


# ---------------------------------------------------------------- datasets
def _to_pil(img: torch.Tensor) -> Any:
    from PIL import Image
    a = img.numpy()
    return Image.fromarray(a[0] if a.shape[0] == 1 else np.ascontiguousarray(a.transpose(1, 2, 0)))


class ArrayDataset(Dataset):
    """Items ``(transform(PIL image), label)``, or ``(float CxHxW in [0,1], label)`` without a transform."""

    def __init__(self, arrays: ImageArrays, transform: Transform = None) -> None:
        self.arrays, self.transform = arrays, transform
        self.targets = arrays.labels

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        x, y = self.arrays.images[i], int(self.arrays.labels[i])
        return (x.float().div(255.0) if self.transform is None else self.transform(_to_pil(x))), y


class ImageFileDataset(Dataset):
    """Images read from disk on access; items ``(transform(RGB PIL image), label)``."""

    def __init__(self, samples: list[tuple[Path, int]], name: str, classes: int, transform: Transform = None) -> None:
        self.samples, self.name, self.classes, self.transform = samples, name, classes, transform
        self.targets = [y for _, y in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image
        path, y = self.samples[i]
        with Image.open(path) as im:
            img = im.convert("RGB")
        return (img if self.transform is None else self.transform(img)), y

    def subset(self, idx: Sequence[int], transform: Transform) -> "ImageFileDataset":
        return ImageFileDataset([self.samples[int(i)] for i in idx], self.name, self.classes, transform)


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive into ``dest`` via a temporary folder, refusing unsafe members."""
    tmp = dest / ".extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
                    raise _corrupt(archive, f"unsafe archive member {m.name!r} (absolute, '..' or a link); "
                                            "refusing to extract")
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **safe)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _corrupt(archive, f"bad or truncated archive ({e})") from e
    except DataCorruptError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for child in tmp.iterdir():
        target = dest / child.name
        if target.is_dir():
            shutil.rmtree(target)
        child.replace(target)
    tmp.rmdir()


def _flowers17(spec: DatasetSpec, root: Path, download: bool) -> list[tuple[Path, int]]:
    base = root / "17flowers"
    dirs, tgzs = [base / "jpg", root / "jpg"], [root / "17flowers.tgz", base / "17flowers.tgz"]
    jpg = next((d for d in dirs if d.is_dir() and any(d.glob("image_*.jpg"))), None)
    if jpg is None:
        tgz = next((p for p in tgzs if p.is_file()), None)
        if tgz is None and download:
            from torchvision.datasets.utils import download_url
            download_url(spec.url, str(base))
            tgz = base / "17flowers.tgz"
        if tgz is None:
            raise _not_found(spec, root, [f"{d}/image_*.jpg" for d in dirs] + tgzs)
        _safe_extract(tgz, base)
        jpg = base / "jpg"
    files = sorted(jpg.glob("image_*.jpg"))
    if len(files) != 17 * 80:
        raise DataCorruptError(f"{jpg}: found {len(files)} image_*.jpg files, expected 1360 (17 classes x 80). "
                               "Delete the folder and extract 17flowers.tgz again.")
    return [(p, i // 80) for i, p in enumerate(files)]


def _tinyimagenet(spec: DatasetSpec, root: Path, parts: list[str], download: bool) -> tuple[list, int]:
    base = root / "tiny-imagenet-200"
    if not (base / "wnids.txt").is_file() and download:
        from torchvision.datasets.utils import download_and_extract_archive
        download_and_extract_archive(spec.url, download_root=str(root))
    if not base.is_dir():
        raise _not_found(spec, root, [base])
    need = [base / "wnids.txt", base / "train", base / "val" / "images", base / "val" / "val_annotations.txt"]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        raise DataCorruptError(f"{base}: incomplete Tiny-ImageNet folder, missing {missing}. "
                               "Delete it and unzip tiny-imagenet-200.zip again.")
    wnids = sorted(dict.fromkeys((base / "wnids.txt").read_text().split()))
    index = {w: i for i, w in enumerate(wnids)}
    samples: list[tuple[Path, int]] = []
    if "train" in parts:
        for w in wnids:
            d = base / "train" / w / "images"
            d = d if d.is_dir() else base / "train" / w  # also accept the flattened layout
            files = sorted(p for p in d.glob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
            if not files:
                raise DataCorruptError(f"{d}: no training images for class {w}. Unzip tiny-imagenet-200.zip again.")
            samples += [(p, index[w]) for p in files]
    if "test" in parts:
        ann, present = base / "val" / "val_annotations.txt", {p.name for p in (base / "val" / "images").iterdir()}
        for ln, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 2 or cols[1] not in index or cols[0] not in present:
                raise DataCorruptError(f"{ann}:{ln}: bad entry {line!r} (unknown wnid or missing image in "
                                       f"{base / 'val' / 'images'}). Unzip tiny-imagenet-200.zip again.")
            samples.append((base / "val" / "images" / cols[0], index[cols[1]]))
    return samples, len(wnids)


def load_image_dataset(name: str, split: str, root: str | os.PathLike | None = None,
                       transform: Transform = None, download: bool = False) -> ImageFileDataset:
    """Flowers17 / Tiny-ImageNet from their JPEG folders; ``split`` is the on-disk split.

    Tiny-ImageNet: "train" = train/, "test" = val/ (labels from val_annotations.txt), "all" = both.
    Flowers17 has no official split: only "all" (1,360 images, class of the i-th sorted file = i // 80).
    Files are never moved; a 17flowers.tgz is extracted to ``<root>/17flowers/`` on first use.
    """
    spec = get_spec(name)
    if spec.in_memory:
        raise ValueError(f"{spec.name} is an in-memory dataset; use load_arrays({spec.name!r}, ...)")
    parts, root_p = _parts(split), data_root(root)
    if spec.name == "flowers17":
        if split != "all":
            raise ValueError("flowers17 has no official train/test split; only split='all' (1,360 images) exists. "
                             "Use classification_splits('flowers17') for the seeded 60/20/20 split.")
        return ImageFileDataset(_flowers17(spec, root_p, download), spec.name, spec.num_classes, transform)
    samples, classes = _tinyimagenet(spec, root_p, parts, download)
    return ImageFileDataset(samples, spec.name, classes, transform)


def _seeded_split(n: int, sizes: Sequence[int], seed: int) -> list[torch.Tensor]:
    """Same indices as ``random_split(range(n), sizes + [rest], generator=Generator().manual_seed(seed))``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cuts = np.cumsum([0, *sizes, n - sum(sizes)])
    return [perm[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def classification_splits(name: str, root: str | os.PathLike | None = None, seed: int = 0,
                          train_transform: Transform = None, eval_transform: Transform = None,
                          download: bool = False) -> tuple[Dataset, Dataset, Dataset]:
    """(train, val, test) datasets for the supervised experiments.

    The official train split is shuffled with ``torch.Generator().manual_seed(seed)`` and cut
    ``int(0.8 * n)`` / rest into train / val (Tiny-ImageNet ``int(0.9 * n)``), giving the same indices
    as the reference's ``random_split``; test is the official test split (Tiny-ImageNet: val folder,
    PathMNIST: 'test', SVHN: 'test' without 'extra'). Deviations from the reference: val uses
    ``eval_transform`` (the reference applied train augmentation to val), and Flowers17, which
    the reference evaluated on all 1,360 training images (a train/test leak), is split 60/20/20
    (816/272/272) with the same seeded generator. Without a transform, in-memory items are float
    tensors in [0, 1] and JPEG items are ``ToTensor()`` of the image.
    """
    spec, root_p = get_spec(name), data_root(root)
    if spec.in_memory:
        train, test = load_arrays(name, "train", root_p, download), load_arrays(name, "test", root_p, download)
        tr, va = _seeded_split(len(train), [int((1 - spec.val_fraction) * len(train))], seed)
        return (ArrayDataset(train.subset(tr), train_transform), ArrayDataset(train.subset(va), eval_transform),
                ArrayDataset(test, eval_transform))
    if train_transform is None or eval_transform is None:
        from torchvision import transforms
        train_transform = train_transform or transforms.ToTensor()
        eval_transform = eval_transform or transforms.ToTensor()
    if spec.name == "flowers17":
        full = load_image_dataset(name, "all", root_p, None, download)
        n = len(full)
        tr, va, te = _seeded_split(n, [round(0.6 * n), round(0.2 * n)], seed)
        return full.subset(tr, train_transform), full.subset(va, eval_transform), full.subset(te, eval_transform)
    train = load_image_dataset(name, "train", root_p, None, download)
    tr, va = _seeded_split(len(train), [int((1 - spec.val_fraction) * len(train))], seed)
    test = load_image_dataset(name, "test", root_p, eval_transform, download)
    return train.subset(tr, train_transform), train.subset(va, eval_transform), test


def build_transforms(name: str, train: bool) -> Callable[[Any], torch.Tensor]:
    """torchvision (v1) pipeline on PIL images for the classification experiments.

    train: RandomResizedCrop(size, (0.08, 1), (3/4, 4/3), bicubic) -> RandAugment(2, 9) -> HFlip ->
    ToTensor -> Normalize -> RandomErasing(p=0.25, per-pixel random values as timm's 'pixel' mode).
    eval: Resize(int(size / 0.875), bicubic) -> CenterCrop(size) -> ToTensor -> Normalize.
    Deviation: the reference stacks its own crop/RandAugment/flip in front of timm's full training
    transform (two crops, two RandAugments); we apply the pipeline once.
    """
    from torchvision import transforms as T
    spec = get_spec(name)
    s, bicubic = spec.image_size, T.InterpolationMode.BICUBIC
    if train:
        return T.Compose([T.RandomResizedCrop(s, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation=bicubic),
                          T.RandAugment(num_ops=2, magnitude=9), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(spec.mean, spec.std), T.RandomErasing(p=0.25, value="random")])
    return T.Compose([T.Resize(int(s / 0.875), interpolation=bicubic), T.CenterCrop(s), T.ToTensor(),
                      T.Normalize(spec.mean, spec.std)])
