"""Data sets: shapes and tasks, seeds, and MNIST read from small IDX files written here."""

import gzip
import struct

import pytest
import torch

from lossbench.components.data import DataError, make, read_idx, split
from lossbench.config.validate import build
from lossbench.errors import UserError


def _write_idx(path, array: torch.Tensor, compress=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.dim()) + struct.pack(
        ">" + "I" * array.dim(), *array.shape
    )
    data = header + bytes(array.to(torch.uint8).flatten().tolist())
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_local_idx_files(tmp_path, compress):
    images = torch.randint(0, 256, (12, 28, 28))
    labels = torch.arange(12) % 10
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, compress)
    data = make("mnist", {"path": str(tmp_path), "n_samples": None}, 0)
    assert data.x.shape == (12, 784) and data.task == "multiclass"
    assert torch.allclose(data.x[3], images[3].flatten().double() / 255)
    assert data.y.tolist() == labels.tolist()


def test_mnist_refuses_a_missing_folder_and_a_truncated_file(tmp_path):
    with pytest.raises(UserError, match="never downloaded"):
        build({"data": {"name": "mnist", "path": str(tmp_path / "nope")}})
    _write_idx(tmp_path / "train-images-idx3-ubyte", torch.zeros(4, 28, 28))
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(str(tmp_path / "train-images-idx3-ubyte"))


def test_constants_mean_and_median_are_what_the_article_says():
    y = make("constants", {"targets": [1, 2, 3, 4, 100]}, 0).y.squeeze()
    assert y.mean().item() == 22.0 and y.median().item() == 3.0


def test_line_outliers_are_the_requested_fraction_and_shift():
    d = make(
        "line",
        {
            "n_samples": 200,
            "slope": 2.0,
            "intercept": 1.0,
            "noise": 0.1,
            "outlier_fraction": 0.1,
            "outlier_shift": 20.0,
        },
        3,
    )
    assert int(d.marks.sum()) == 20
    resid = d.y.squeeze() - (2 * d.x.squeeze() + 1)
    assert (resid[d.marks] > 19).all() and (resid[~d.marks].abs() < 0.6).all()


def test_linear_separable_keeps_its_gap():
    d = make("linear_separable", {"n_samples": 300, "n_features": 2, "margin": 0.4}, 1)
    w = torch.tensor(d.info["normal"], dtype=torch.float64)
    proj = d.x @ w
    assert (proj.abs() >= 0.2 - 1e-12).all()
    assert ((proj > 0).double() == d.y.squeeze()).all()


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = (make("moons", {"n_samples": 50, "noise": 0.1}, s) for s in (0, 0, 1))
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


def test_split_is_disjoint_and_complete():
    d = make("moons", {"n_samples": 100, "noise": 0.1}, 0)
    x_tr, _, x_va, _ = split(d, 0.2, 0)
    assert len(x_tr) == 80 and len(x_va) == 20
    both = torch.cat([x_tr, x_va])
    assert torch.equal(both[both[:, 0].argsort()], d.x[d.x[:, 0].argsort()])


def test_mnist_like_looks_like_mnist():
    d = make("mnist_like", {"n_samples": 200, "n_classes": 10, "side": 28}, 0)
    assert d.x.shape == (200, 784) and 0 <= d.x.min() and d.x.max() <= 1
    assert 0.05 < d.x.mean() < 0.25 and (d.x == 0).double().mean() > 0.5


def _mnist_like_by_loops(g: torch.Generator, n_samples: int, n_classes: int, side: int) -> torch.Tensor:
    """mnist_like written the plain way (distance over the coordinate pair, one roll per image)."""
    grid = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1).double()
    ends = torch.rand(n_classes, 3, 2, 2, generator=g, dtype=torch.float64) * (side - 10) + 5
    t = torch.linspace(0, 1, 24, dtype=torch.float64).reshape(1, 1, 24, 1)
    points = ends[:, :, :1] + t * (ends[:, :, 1:] - ends[:, :, :1])
    d2 = ((grid.reshape(1, 1, 1, side, side, 2) - points[..., None, None, :]) ** 2).sum(-1)
    protos = torch.exp(-d2 / 2.0).amax(dim=(1, 2))
    protos = torch.where(protos > 0.1, protos, torch.zeros_like(protos))
    labels = torch.arange(n_samples) % n_classes
    shifts = torch.randint(-2, 3, (n_samples, 2), generator=g)
    images = torch.stack([torch.roll(protos[c], tuple(s.tolist()), (0, 1)) for c, s in zip(labels, shifts)])
    images = images + 0.1 * torch.randn(images.shape, generator=g, dtype=torch.float64) * (images > 0.05)
    return images.clamp(0, 1).reshape(n_samples, side * side)


@pytest.mark.parametrize("seed, n, classes, side", [(0, 1000, 10, 28), (3, 37, 3, 8), (11, 200, 10, 16)])
def test_mnist_like_vectorised_equals_the_plain_loops_bit_for_bit(seed, n, classes, side):
    kwargs = {"n_samples": n, "n_classes": classes, "side": side}
    fast = make("mnist_like", kwargs, seed).x
    plain = _mnist_like_by_loops(torch.Generator().manual_seed(seed), n, classes, side)
    assert torch.equal(fast, plain)
