"""Tests for vitsom.data: real offline data (when VITSOM_DATA is set) and format-faithful fakes."""
from __future__ import annotations

import bz2
import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from vitsom import data as D

RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------- fake writers (exact on-disk formats)
def write_idx(path: Path, arr: np.ndarray, compress: bool = True) -> None:
    magic = 0x0800 | arr.ndim  # unsigned byte data
    blob = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    blob += arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob) if compress else blob)


def fake_idx_set(folder: Path, n_train: int = 12, n_test: int = 5, compress: bool = True, size: int = 28):
    xs = {p: RNG.integers(0, 256, (n, size, size), dtype=np.uint8) for p, n in (("train", n_train), ("t10k", n_test))}
    ys = {p: RNG.integers(0, 10, len(x), dtype=np.uint8) for p, x in xs.items()}
    sfx = ".gz" if compress else ""
    for p in xs:
        write_idx(folder / f"{p}-images-idx3-ubyte{sfx}", xs[p], compress)
        write_idx(folder / f"{p}-labels-idx1-ubyte{sfx}", ys[p], compress)
    return xs, ys


def fake_usps_h5(path: Path, n_train: int = 9, n_test: int = 4):
    ints = {p: RNG.integers(0, 256, (n, 256)) for p, n in (("train", n_train), ("test", n_test))}
    ys = {p: RNG.integers(0, 10, len(x)).astype(np.int32) for p, x in ints.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for p in ints:
            g = f.create_group(p)
            jitter = RNG.uniform(-0.4, 0.4, ints[p].shape) * (ints[p] > 0) * (ints[p] < 255)  # round, not floor
            g["data"] = ((ints[p] + jitter) / 255.0).astype(np.float32)
            g["target"] = ys[p]
    return ints, ys


def fake_cifar(root: Path, hundred: bool = False):
    d = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    d.mkdir(parents=True)
    names = ["train", "test"] if hundred else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    key, k = (b"fine_labels", 100) if hundred else (b"labels", 10)
    out = {}
    for n in names:
        x = RNG.integers(0, 256, (3, 3072), dtype=np.uint8)
        y = [int(v) for v in RNG.integers(0, k, 3)]
        with open(d / n, "wb") as f:
            pickle.dump({b"batch_label": n.encode(), b"data": x, key: y, b"filenames": [b"a", b"b", b"c"]}, f)
        out[n] = (x, y)
    return out


def fake_jpeg_bytes(seed: int, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> bytes:
    img = Image.new(mode, size, color=(seed % 256, 7, 9) if mode == "RGB" else seed % 256)
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def fake_flowers_tgz(path: Path, n: int = 1360, extra_member: str | None = None) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for i in range(1, n + 1):
            blob = fake_jpeg_bytes(i, size=(8 + i % 3, 8))
            info = tarfile.TarInfo(f"jpg/image_{i:04d}.jpg")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        if extra_member:
            info = tarfile.TarInfo(extra_member)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))


def fake_tiny(root: Path, wnids=("n03", "n01", "n02"), per_class: int = 4, n_val: int = 5):
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for w in wnids:
        d = base / "train" / w / "images"
        d.mkdir(parents=True)
        (base / "train" / w / f"{w}_boxes.txt").write_text("")
        for i in range(per_class):
            (d / f"{w}_{i}.JPEG").write_bytes(fake_jpeg_bytes(i, (64, 64), "L" if i == 0 else "RGB"))
    lines, val_labels = [], []
    for i in range(n_val):
        w = wnids[i % len(wnids)]
        (base / "val" / "images" / f"val_{i}.JPEG").write_bytes(fake_jpeg_bytes(i, (64, 64)))
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
        val_labels.append(sorted(wnids).index(w))
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return val_labels


# ---------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real_root() -> Path:
    root = os.environ.get("VITSOM_DATA")
    if not root or not (Path(root) / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("real MNIST/FMNIST/USPS files not found; set VITSOM_DATA=/path/to/shared/data to enable")
    return Path(root)


def test_real_mnist(real_root):
    a = D.load_arrays("mnist", "all", real_root)
    assert a.images.shape == (70_000, 1, 28, 28) and a.images.dtype == torch.uint8
    assert a.labels.dtype == torch.int64 and a.classes == 10
    counts = torch.bincount(a.labels[:60_000], minlength=10).tolist()
    assert counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test = D.load_arrays("mnist", "test", real_root)
    assert len(test) == 10_000 and torch.equal(test.images, a.images[60_000:])


def test_real_fmnist(real_root):
    a = D.load_arrays("fashion-mnist", "all", real_root)
    assert a.images.shape == (70_000, 1, 28, 28)
    assert torch.bincount(a.labels, minlength=10).tolist() == [7000] * 10
    assert abs(a.float_batch(slice(0, 60_000)).mean().item() - 0.2860) < 1e-3


def test_real_usps(real_root):
    a = D.load_arrays("usps", "all", real_root)
    assert a.images.shape == (9298, 1, 16, 16) and a.images.dtype == torch.uint8
    assert len(D.load_arrays("usps", "train", real_root)) == 7291
    assert len(D.load_arrays("usps", "test", real_root)) == 2007
    assert set(a.labels.tolist()) == set(range(10))
    assert a.images.max() == 255 and a.images.min() == 0


# ---------------------------------------------------------------- in-memory fakes
@pytest.mark.parametrize("name,folder,compress", [
    ("mnist", "mnist", True), ("mnist", "MNIST/raw", False),
    ("fmnist", "fashion-mnist", True), ("fmnist", "FashionMNIST/raw", False)])
def test_idx_fake(tmp_path, name, folder, compress):
    xs, ys = fake_idx_set(tmp_path / folder, compress=compress)
    a = D.load_arrays(name, "all", tmp_path)
    assert a.images.shape == (17, 1, 28, 28) and a.name == D.get_spec(name).name
    assert np.array_equal(a.images[:, 0].numpy(), np.concatenate([xs["train"], xs["t10k"]]))
    assert np.array_equal(a.labels.numpy(), np.concatenate([ys["train"], ys["t10k"]]))
    t = D.load_arrays(name, "test", tmp_path)
    assert np.array_equal(t.images[:, 0].numpy(), xs["t10k"]) and len(D.load_arrays(name, "train", tmp_path)) == 12


def test_image_arrays_helpers(tmp_path):
    fake_idx_set(tmp_path / "mnist")
    a = D.load_arrays("mnist", root=tmp_path)
    s = a.subset([3, 1])
    assert torch.equal(s.images, a.images[[3, 1]]) and torch.equal(s.labels, a.labels[[3, 1]])
    assert len(a.subset(np.arange(4))) == 4 and len(a.subset(slice(0, 5))) == 5
    fb = a.float_batch(torch.tensor([0, 2]))
    assert fb.dtype == torch.float32 and torch.allclose(fb * 255, a.images[[0, 2]].float())


def test_usps_h5_fake(tmp_path):
    ints, ys = fake_usps_h5(tmp_path / "usps" / "usps.h5")
    a = D.load_arrays("usps", "all", tmp_path)
    assert a.images.shape == (13, 1, 16, 16)
    assert np.array_equal(a.images.reshape(13, 256).numpy(), np.concatenate([ints["train"], ints["test"]]))
    assert np.array_equal(a.labels.numpy(), np.concatenate([ys["train"], ys["test"]]))


def test_usps_libsvm_fake(tmp_path):
    d = tmp_path / "usps"
    d.mkdir()
    truth = {}
    for fname, n in (("usps.bz2", 6), ("usps.t.bz2", 3)):
        ints, ys = RNG.integers(0, 256, (n, 256)), RNG.integers(1, 11, n)  # LIBSVM labels are 1..10
        lines = [f"{y} " + " ".join(f"{j + 1}:{v / 127.5 - 1:.6f}" for j, v in enumerate(row))
                 for row, y in zip(ints, ys)]
        (d / fname).write_bytes(bz2.compress("\n".join(lines).encode()))
        truth[fname] = (ints, ys - 1)
    a = D.load_arrays("usps", "test", tmp_path)
    assert np.array_equal(a.images.reshape(3, 256).numpy(), truth["usps.t.bz2"][0])
    assert np.array_equal(a.labels.numpy(), truth["usps.t.bz2"][1])
    assert len(D.load_arrays("usps", "all", tmp_path)) == 9


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_fake(tmp_path, hundred):
    batches = fake_cifar(tmp_path, hundred)
    name = "cifar-100" if hundred else "CIFAR10"
    tr, te = D.load_arrays(name, "train", tmp_path), D.load_arrays(name, "test", tmp_path)
    train_names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    assert len(tr) == 3 * len(train_names) and len(te) == 3
    x0, y0 = batches[train_names[0]]
    assert np.array_equal(tr.images[:3].numpy(), x0.reshape(3, 3, 32, 32)) and tr.labels[:3].tolist() == y0
    # channel-major rows: the first 1024 bytes are the red plane
    assert np.array_equal(tr.images[0, 0].numpy().ravel(), x0[0, :1024])
    xt, yt = batches["test" if hundred else "test_batch"]
    assert np.array_equal(te.images.numpy(), xt.reshape(3, 3, 32, 32)) and te.labels.tolist() == yt
    assert tr.classes == (100 if hundred else 10)


@pytest.mark.parametrize("sub", ["svhn", ""])
def test_svhn_fake(tmp_path, sub):
    d = tmp_path / sub
    d.mkdir(exist_ok=True)
    truth = {}
    for p, n in (("train", 5), ("test", 4)):
        x = RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([10, 1, 2, 9, 3][:n], dtype=np.uint8).reshape(n, 1)
        scipy.io.savemat(d / f"{p}_32x32.mat", {"X": x, "y": y})
        truth[p] = (x, y)
    a = D.load_arrays("svhn", "train", tmp_path)
    x, y = truth["train"]
    assert a.images.shape == (5, 3, 32, 32) and a.labels.tolist() == [0, 1, 2, 9, 3]
    assert np.array_equal(a.images[2].numpy(), x[:, :, :, 2].transpose(2, 0, 1))
    assert len(D.load_arrays("svhn", "all", tmp_path)) == 9


def test_pathmnist_fake(tmp_path):
    arrs = {}
    for p, n in (("train", 7), ("val", 2), ("test", 3)):
        arrs[f"{p}_images"] = RNG.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        arrs[f"{p}_labels"] = RNG.integers(0, 9, (n, 1), dtype=np.uint8)
    (tmp_path / "medmnist").mkdir()
    np.savez_compressed(tmp_path / "medmnist" / "pathmnist.npz", **arrs)
    a = D.load_arrays("medmnist", "all", tmp_path)
    assert a.images.shape == (10, 3, 28, 28) and a.classes == 9  # official val split is not used
    assert np.array_equal(a.images[:7].numpy(), arrs["train_images"].transpose(0, 3, 1, 2))
    assert np.array_equal(a.labels[7:].numpy(), arrs["test_labels"].ravel())


def test_classification_splits_in_memory(tmp_path):
    xs, _ = fake_idx_set(tmp_path / "mnist", n_train=50, n_test=7)
    tr, va, te = D.classification_splits("mnist", tmp_path, seed=3)
    assert (len(tr), len(va), len(te)) == (40, 10, 7)
    x, y = tr[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and isinstance(y, int)
    # train and val partition the official train split
    rows = {tuple(im.numpy().ravel()) for ds in (tr, va) for im in ds.arrays.images}
    assert rows == {tuple(im.ravel()) for im in xs["train"]}
    # same indices as torch's random_split with the seeded generator, and deterministic
    ref = torch.utils.data.random_split(range(50), [40, 10], generator=torch.Generator().manual_seed(3))
    assert np.array_equal(tr.arrays.images[:, 0].numpy(), xs["train"][ref[0].indices])
    tr2, _, _ = D.classification_splits("mnist", tmp_path, seed=3)
    assert torch.equal(tr2.arrays.images, tr.arrays.images)
    tr3, _, _ = D.classification_splits("mnist", tmp_path, seed=4)
    assert not torch.equal(tr3.arrays.images, tr.arrays.images)
    # with transforms: eval pipeline gives a normalised 28x28 tensor
    _, va_t, _ = D.classification_splits("mnist", tmp_path, eval_transform=D.build_transforms("mnist", False))
    assert va_t[0][0].shape == (1, 28, 28) and va_t[0][0].min() < 0


# ---------------------------------------------------------------- JPEG sets
@pytest.fixture(scope="module")
def flowers_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flowers")
    fake_flowers_tgz(root / "17flowers.tgz")
    return root


def test_flowers17_extract_and_labels(flowers_root):
    ds = D.load_image_dataset("flowers-17", "all", flowers_root)
    assert (flowers_root / "17flowers" / "jpg" / "image_1360.jpg").is_file()
    assert not (flowers_root / "17flowers" / ".extracting").exists()
    assert len(ds) == 1360 and ds.classes == 17
    assert np.bincount(ds.targets).tolist() == [80] * 17
    assert ds.targets[79] == 0 and ds.targets[80] == 1 and ds.targets[-1] == 16
    img, y = ds[81]  # image_0082.jpg: width 8 + 82 % 3
    assert img.mode == "RGB" and img.size == (9, 8) and y == 1
    assert len(D.load_image_dataset("flowers17", "all", flowers_root)) == 1360  # reuses the extracted folder
    with pytest.raises(ValueError, match="only split='all'"):
        D.load_image_dataset("flowers17", "train", flowers_root)


def test_flowers17_splits(flowers_root):
    tr, va, te = D.classification_splits("flowers17", flowers_root, seed=0)
    assert (len(tr), len(va), len(te)) == (816, 272, 272)
    paths = [set(p for p, _ in ds.samples) for ds in (tr, va, te)]
    assert len(paths[0] | paths[1] | paths[2]) == 1360
    x, y = te[0]
    assert x.shape[0] == 3 and x.dtype == torch.float32 and 0 <= y < 17
    tr2, _, te2 = D.classification_splits("flowers17", flowers_root, seed=0)
    assert tr2.samples == tr.samples and te2.samples == te.samples
    assert D.classification_splits("flowers17", flowers_root, seed=1)[0].samples != tr.samples


def test_flowers17_unsafe_archive(tmp_path):
    fake_flowers_tgz(tmp_path / "17flowers.tgz", n=2, extra_member="../evil.txt")
    with pytest.raises(D.DataCorruptError, match="unsafe"):
        D.load_image_dataset("flowers17", "all", tmp_path)
    assert not (tmp_path / "evil.txt").exists()


def test_flowers17_wrong_count_and_truncated(tmp_path):
    fake_flowers_tgz(tmp_path / "17flowers.tgz", n=100)
    with pytest.raises(D.DataCorruptError, match="1360"):
        D.load_image_dataset("flowers17", "all", tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "17flowers.tgz").write_bytes((tmp_path / "17flowers.tgz").read_bytes()[:2000])
    with pytest.raises(D.DataCorruptError, match="17flowers.tgz"):
        D.load_image_dataset("flowers17", "all", other)
    assert not (other / "17flowers" / "jpg").exists()


def test_tinyimagenet_fake(tmp_path):
    val_labels = fake_tiny(tmp_path)
    tr = D.load_image_dataset("tiny-imagenet", "train", tmp_path)
    te = D.load_image_dataset("tinyimagenet", "test", tmp_path)
    assert len(tr) == 12 and len(te) == 5 and tr.classes == 3
    assert tr.targets == [0] * 4 + [1] * 4 + [2] * 4  # sorted wnids: n01, n02, n03
    assert all(p.parent.parent.name == ["n01", "n02", "n03"][y] for p, y in tr.samples)
    assert te.targets == val_labels
    img, _ = tr[0]  # a greyscale JPEG comes back as RGB
    assert img.mode == "RGB" and img.size == (64, 64)
    assert len(D.load_image_dataset("tinyimagenet", "all", tmp_path)) == 17
    assert (tmp_path / "tiny-imagenet-200" / "val" / "images" / "val_0.JPEG").is_file()  # nothing moved
    a, b, c = D.classification_splits("tinyimagenet", tmp_path, seed=0,
                                      train_transform=D.build_transforms("tinyimagenet", True),
                                      eval_transform=D.build_transforms("tinyimagenet", False))
    assert (len(a), len(b), len(c)) == (10, 2, 5)  # int(0.9 * 12) / rest / official val
    assert a[0][0].shape == (3, 64, 64) and c[0][0].shape == (3, 64, 64)


# ---------------------------------------------------------------- transforms
@pytest.mark.parametrize("name,mode,size", [("cifar10", "RGB", 32), ("fmnist", "L", 28), ("pathmnist", "RGB", 28)])
def test_build_transforms(name, mode, size):
    img = Image.fromarray(RNG.integers(0, 256, (size, size, 3) if mode == "RGB" else (size, size), dtype=np.uint8))
    c = 3 if mode == "RGB" else 1
    torch.manual_seed(0)
    for train in (True, False):
        out = D.build_transforms(name, train)(img)
        assert out.shape == (c, size, size) and out.dtype == torch.float32
    spec = D.get_spec(name)
    assert len(spec.mean) == len(spec.std) == c
    flat = Image.new(mode, (size, size), 128 if mode == "L" else (128, 128, 128))
    ev = D.build_transforms(name, False)(flat)
    expect = torch.tensor([(128 / 255 - m) / s for m, s in zip(spec.mean, spec.std)])
    assert torch.allclose(ev.mean(dim=(1, 2)), expect, atol=1e-3)


# ---------------------------------------------------------------- errors and registry
def test_missing_data_message(tmp_path):
    with pytest.raises(D.DataNotFoundError) as e:
        D.load_arrays("mnist", root=tmp_path)
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert str(tmp_path / "mnist") in msg and str(tmp_path / "MNIST" / "raw") in msg and "VITSOM_DATA" in msg
    assert "download=True" in msg
    for name, split in (("usps", "all"), ("cifar10", "all"), ("svhn", "test"), ("pathmnist", "all")):
        with pytest.raises(D.DataNotFoundError, match="VITSOM_DATA"):
            D.load_arrays(name, split, root=tmp_path)
    with pytest.raises(D.DataNotFoundError, match="17flowers.tgz"):
        D.load_image_dataset("flowers17", "all", tmp_path)
    with pytest.raises(D.DataNotFoundError, match="tiny-imagenet-200"):
        D.load_image_dataset("tinyimagenet", "train", tmp_path)


def test_incomplete_folder_is_skipped(tmp_path):
    xs, _ = fake_idx_set(tmp_path / "mnist")
    for f in (tmp_path / "mnist").glob("t10k-*"):
        f.unlink()
    assert len(D.load_arrays("mnist", "train", tmp_path)) == 12  # only the needed files are required
    with pytest.raises(D.DataNotFoundError, match="t10k-images"):
        D.load_arrays("mnist", "all", tmp_path)
    fake_idx_set(tmp_path / "MNIST" / "raw", n_train=3, n_test=2, compress=False)
    assert len(D.load_arrays("mnist", "all", tmp_path)) == 5  # the first complete folder wins


def test_truncated_gzip(tmp_path):
    fake_idx_set(tmp_path / "mnist")
    p = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(D.DataCorruptError, match="train-images-idx3-ubyte.gz") as e:
        D.load_arrays("mnist", "train", tmp_path)
    assert "gzip" in str(e.value)
    assert len(D.load_arrays("mnist", "test", tmp_path)) == 5  # the other split is unaffected


def test_bad_idx_magic_and_size(tmp_path):
    xs, ys = fake_idx_set(tmp_path / "fashion-mnist")
    write_idx(tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz", xs["t10k"])  # images in the label file
    with pytest.raises(D.DataCorruptError, match="t10k-labels-idx1-ubyte.gz.*magic"):
        D.load_arrays("fmnist", "test", tmp_path)
    raw = gzip.decompress((tmp_path / "fashion-mnist" / "train-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "fashion-mnist" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw[:-3]))
    with pytest.raises(D.DataCorruptError, match="train-labels-idx1-ubyte.gz.*truncated"):
        D.load_arrays("fmnist", "train", tmp_path)


def test_mismatched_counts_and_labels(tmp_path):
    xs, ys = fake_idx_set(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", ys["t10k"][:-1])
    with pytest.raises(D.DataCorruptError, match="t10k"):
        D.load_arrays("mnist", "test", tmp_path)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.full(5, 12, np.uint8))
    with pytest.raises(D.DataCorruptError, match="labels span"):
        D.load_arrays("mnist", "test", tmp_path)


def test_h5_missing_key(tmp_path):
    path = tmp_path / "usps.h5"
    with h5py.File(path, "w") as f:
        f.create_group("train")["data"] = np.zeros((3, 256), np.float32)
    with pytest.raises(D.DataCorruptError, match="usps.h5.*train/target"):
        D.load_arrays("usps", "train", tmp_path)
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(D.DataCorruptError, match="usps.h5"):
        D.load_arrays("usps", "train", tmp_path)


def test_bad_pickle_and_npz(tmp_path):
    fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    with pytest.raises(D.DataCorruptError, match="test_batch"):
        D.load_arrays("cifar10", "test", tmp_path)
    np.savez(tmp_path / "pathmnist.npz", train_images=np.zeros((2, 28, 28, 3), np.uint8))
    with pytest.raises(D.DataCorruptError, match="pathmnist.npz.*train_labels"):
        D.load_arrays("pathmnist", "train", tmp_path)


def test_names_splits_and_root(tmp_path, monkeypatch):
    assert set(D.DATASETS) == {"mnist", "fmnist", "usps", "cifar10", "cifar100", "svhn", "pathmnist",
                               "flowers17", "tinyimagenet"}
    for alias, key in (("Fashion-MNIST", "fmnist"), ("fashion_mnist", "fmnist"), ("CIFAR-10", "cifar10"),
                       ("cifar-100", "cifar100"), ("Flowers-17", "flowers17"), ("tiny-imagenet", "tinyimagenet"),
                       ("MedMNIST", "pathmnist"), ("USPS", "usps")):
        assert D.get_spec(alias).name == key
    with pytest.raises(ValueError, match="mnist.*tinyimagenet"):
        D.get_spec("imagenet")
    fake_idx_set(tmp_path / "mnist")
    with pytest.raises(ValueError, match="split"):
        D.load_arrays("mnist", "val", tmp_path)
    with pytest.raises(ValueError, match="load_image_dataset"):
        D.load_arrays("flowers17", "all", tmp_path)
    with pytest.raises(ValueError, match="load_arrays"):
        D.load_image_dataset("mnist", "all", tmp_path)
    monkeypatch.setenv("VITSOM_DATA", str(tmp_path))
    assert D.data_root() == tmp_path and D.data_root("/x") == Path("/x")
    assert len(D.load_arrays("mnist")) == 17
    monkeypatch.delenv("VITSOM_DATA")
    assert D.data_root() == Path(D.__file__).resolve().parent.parent / "data"
