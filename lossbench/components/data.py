"""Data sets: each a function drawing a data set from a torch generator seeded by the run's seed.

A data set function returns a `Dataset`; its keyword-only arguments are the config's `data` keys
(`data: {name: moons, n_samples: 1000, noise: 0.1}`). The task (regression, binary, multiclass)
comes from the data set, and a loss refuses a task it does not fit. Nothing is downloaded: sets are
generated here, come bundled with scikit-learn (extra `datasets`), or are read from a local folder.

To add one: a function here with `@datasets.register`, returning `Dataset(x, y, task)`.
"""

from __future__ import annotations

import functools
import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import torch
from annotated_types import Ge, Gt, Interval

from ..errors import DataError
from .idx import find_idx_file, idx_rows, read_idx
from .losses import BINARY, MULTICLASS, REGRESSION
from .registry import Registry

datasets = Registry("data set")

NSamples = Annotated[int, Ge(1)]
Noise = Annotated[float, Ge(0)]
NClasses = Annotated[int, Interval(ge=1, le=1000)]
NFeatures = Annotated[int, Interval(ge=1, le=100_000)]


MAX_DRAW_ROUNDS = 50  # rejection sampling: rounds before a setting is called (almost) impossible


@dataclass
class Dataset:
    """Inputs `x` [N, d_in] and targets `y`: [N, d_out] floats for regression, [N, 1] floats in
    {0, 1} for binary, [N] class indices for multiclass. `marks` flags points for plots (outliers)."""

    x: torch.Tensor
    y: torch.Tensor
    task: str
    n_classes: int = 0
    marks: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        if self.task == MULTICLASS:
            return self.n_classes
        return 1 if self.task == BINARY else self.y.shape[1]

    def __repr__(self) -> str:
        return f"Dataset({self.task}, n={len(self.x)}, d_in={self.x.shape[1]}, d_out={self.n_outputs})"


def _binary(x: torch.Tensor, labels: torch.Tensor, **kw: Any) -> Dataset:
    return Dataset(x, labels.reshape(-1, 1).to(x.dtype), BINARY, **kw)


# ----- regression -----------------------------------------------------------------------------


@datasets.register
def line(
    g: torch.Generator,
    *,
    n_samples: NSamples = 200,
    slope: float = 2.0,
    intercept: float = 1.0,
    noise: Noise = 0.1,
    outlier_fraction: Annotated[float, Interval(ge=0, le=1)] = 0.0,
    outlier_shift: float = 20.0,
) -> Dataset:
    """y = slope x + intercept + N(0, noise^2), x ~ U(-1, 1); a fraction of targets shifted (outliers)."""
    x = torch.rand(n_samples, 1, generator=g, dtype=torch.float64) * 2 - 1
    y = slope * x + intercept + noise * torch.randn(n_samples, 1, generator=g, dtype=torch.float64)
    marks = torch.zeros(n_samples, dtype=torch.bool)
    n_out = round(outlier_fraction * n_samples)
    marks[torch.randperm(n_samples, generator=g)[:n_out]] = True
    y[marks] += outlier_shift
    return Dataset(x, y, REGRESSION, marks=marks)


@datasets.register(val_fraction=0.0)
def constants(g: torch.Generator, *, targets: Sequence[float] = (1.0, 2.0, 3.0, 4.0, 100.0)) -> Dataset:
    """Fit one constant to the given targets (x = 0): MSE finds the mean, MAE the median."""
    if len(targets) == 0:
        raise DataError("must hold at least one number", "data.targets")
    y = torch.tensor([float(t) for t in targets], dtype=torch.float64).reshape(-1, 1)
    return Dataset(torch.zeros_like(y), y, REGRESSION)


@datasets.register
def sine(
    g: torch.Generator,
    *,
    n_samples: NSamples = 200,
    noise: Noise = 0.1,
    periods: Annotated[float, Gt(0)] = 1.0,
) -> Dataset:
    """y = sin(2 pi periods x) + N(0, noise^2), x ~ U(-1, 1)."""
    x = torch.rand(n_samples, 1, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.sin(2 * math.pi * periods * x)
    y = y + noise * torch.randn(n_samples, 1, generator=g, dtype=torch.float64)
    return Dataset(x, y, REGRESSION)


@datasets.register(val_fraction=0.0)
def single(g: torch.Generator, *, x: float = 1.0, y: float = 0.0) -> Dataset:
    """One example (Nielsen's single neuron: x = 1, y = 0); binary when y is 0 or 1."""
    xs = torch.tensor([[float(x)]], dtype=torch.float64)
    ys = torch.tensor([[float(y)]], dtype=torch.float64)
    return Dataset(xs, ys, BINARY if float(y) in (0.0, 1.0) else REGRESSION)


# ----- classification -------------------------------------------------------------------------


@datasets.register
def blobs(
    g: torch.Generator,
    *,
    n_samples: NSamples = 600,
    n_classes: NClasses = 3,
    n_features: NFeatures = 2,
    std: Annotated[float, Ge(0)] = 0.5,
    spread: Annotated[float, Gt(0)] = 3.0,
) -> Dataset:
    """Gaussian blobs around random centres in [-spread, spread]^n_features."""
    if n_classes < 2:
        raise DataError("must be at least 2", "data.n_classes")
    centres = (torch.rand(n_classes, n_features, generator=g, dtype=torch.float64) * 2 - 1) * spread
    labels = torch.arange(n_samples) % n_classes
    x = centres[labels] + std * torch.randn(n_samples, n_features, generator=g, dtype=torch.float64)
    if n_classes == 2:
        return _binary(x, labels)
    return Dataset(x, labels, MULTICLASS, n_classes=n_classes)


def _linear_separable_bytes(n_samples: int = 200, n_features: int = 2, **_: Any) -> tuple[int, str]:
    """Peak bytes of `linear_separable`: a round of 4 x n_samples candidate points, and the kept ones."""
    return n_samples * n_features * 8 * 10, "the points (n_samples x n_features); use fewer of either"


@datasets.register(peak_bytes=_linear_separable_bytes)
def linear_separable(
    g: torch.Generator,
    *,
    n_samples: NSamples = 200,
    n_features: NFeatures = 2,
    margin: Annotated[float, Gt(0)] = 0.3,
) -> Dataset:
    """Two classes on either side of a random hyperplane through 0, with a gap of `margin`.

    Points are drawn in the cube [-2, 2]^n_features and those inside the gap rejected, at most
    MAX_DRAW_ROUNDS times: a margin that (almost) no point of the cube clears is refused rather than
    looping forever.
    """
    w = torch.randn(n_features, generator=g, dtype=torch.float64)
    w = w / w.norm()
    reach = 2 * float(w.abs().sum())  # the largest distance to the plane a point of the cube has
    if margin / 2 >= reach:
        raise DataError(
            f"is {margin}, but no point of the cube [-2, 2]^{n_features} lies farther than {reach:.3g} "
            f"from this plane; use a margin below {2 * reach:.3g}",
            "data.margin",
        )
    x = torch.empty(0, n_features, dtype=torch.float64)
    for _ in range(MAX_DRAW_ROUNDS):  # rejection sampling keeps the points outside the gap
        c = torch.rand(4 * n_samples, n_features, generator=g, dtype=torch.float64) * 4 - 2
        x = torch.cat([x, c[(c @ w).abs() >= margin / 2]])
        if len(x) >= n_samples:
            break
    else:
        raise DataError(
            f"is {margin}: after {MAX_DRAW_ROUNDS} rounds of {4 * n_samples} draws only {len(x)} of "
            f"{n_samples} points clear the gap; use a smaller margin",
            "data.margin",
        )
    x = x[:n_samples]
    return _binary(x, (x @ w > 0).long(), info={"normal": w.tolist()})


@datasets.register
def moons(g: torch.Generator, *, n_samples: NSamples = 1000, noise: Noise = 0.1) -> Dataset:
    """Two interleaving half circles (as scikit-learn's make_moons)."""
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = torch.linspace(0, math.pi, n_out, dtype=torch.float64)
    t_in = torch.linspace(0, math.pi, n_in, dtype=torch.float64)
    outer = torch.stack([torch.cos(t_out), torch.sin(t_out)], 1)
    inner = torch.stack([1 - torch.cos(t_in), 1 - torch.sin(t_in) - 0.5], 1)
    x = torch.cat([outer, inner]) + noise * torch.randn(n_samples, 2, generator=g, dtype=torch.float64)
    labels = torch.cat([torch.zeros(n_out), torch.ones(n_in)]).long()
    return _binary(x, labels)


@datasets.register
def circles(
    g: torch.Generator,
    *,
    n_samples: NSamples = 1000,
    noise: Noise = 0.05,
    factor: Annotated[float, Interval(gt=0, lt=1)] = 0.5,
) -> Dataset:
    """A small circle inside a large one (as scikit-learn's make_circles)."""
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t = torch.rand(n_samples, generator=g, dtype=torch.float64) * 2 * math.pi
    r = torch.cat([torch.ones(n_out), factor * torch.ones(n_in)]).double()
    x = torch.stack([r * torch.cos(t), r * torch.sin(t)], 1)
    x = x + noise * torch.randn(n_samples, 2, generator=g, dtype=torch.float64)
    return _binary(x, torch.cat([torch.zeros(n_out), torch.ones(n_in)]).long())


@datasets.register
def xor(g: torch.Generator, *, n_samples: NSamples = 800, noise: Noise = 0.3) -> Dataset:
    """Four clusters at (+-1, +-1); the class is the XOR of the signs. No linear model solves it."""
    corners = torch.randint(0, 2, (n_samples, 2), generator=g)
    x = (2.0 * corners - 1).double() + noise * torch.randn(n_samples, 2, generator=g, dtype=torch.float64)
    return _binary(x, corners[:, 0] ^ corners[:, 1])


@datasets.register
def spirals(
    g: torch.Generator,
    *,
    n_samples: NSamples = 1000,
    n_classes: NClasses = 2,
    noise: Noise = 0.1,
    turns: Annotated[float, Gt(0)] = 1.5,
) -> Dataset:
    """Interleaved spiral arms, one per class."""
    if n_classes < 2:
        raise DataError("must be at least 2", "data.n_classes")
    labels = torch.arange(n_samples) % n_classes
    r = torch.rand(n_samples, generator=g, dtype=torch.float64)
    theta = 2 * math.pi * (turns * r + labels.double() / n_classes)
    x = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], 1) * 2
    x = x + noise * torch.randn(n_samples, 2, generator=g, dtype=torch.float64) * r.unsqueeze(1)
    if n_classes == 2:
        return _binary(x, labels)
    return Dataset(x, labels, MULTICLASS, n_classes=n_classes)


def _mnist_like_bytes(
    n_samples: int = 1000, n_classes: int = 10, side: int = 28, **_: Any
) -> tuple[int, str]:
    """Peak bytes of `mnist_like`: the stroke-distance tensor of every class, or the images."""
    strokes = n_classes * 3 * 24 * side * side * 8 * 4  # [class, stroke, 24, side, side, 2] and d2
    images = n_samples * side * side * 8 * 5  # stacked, noise, mask, clamped, reshaped
    if strokes > images:
        return (
            strokes,
            "drawing the class prototypes (n_classes x side^2); use fewer n_classes or a smaller side",
        )
    return images, "the images (n_samples x side^2); use fewer n_samples or a smaller side"


@datasets.register(peak_bytes=_mnist_like_bytes)
def mnist_like(
    g: torch.Generator,
    *,
    n_samples: NSamples = 1000,
    n_classes: NClasses = 10,
    side: Annotated[int, Interval(ge=8, le=256)] = 28,
) -> Dataset:
    """Synthetic MNIST-like images: 784 pixels in [0, 1], mostly 0, a few thick strokes per class.

    Each class is a prototype of 3 random strokes; an example is its prototype shifted by up to 2
    pixels with pixel noise, clipped to [0, 1] (mean intensity ~0.1 to 0.15, like MNIST).
    """
    ends = torch.rand(n_classes, 3, 2, 2, generator=g, dtype=torch.float64) * (side - 10) + 5
    t = torch.linspace(0, 1, 24, dtype=torch.float64).reshape(1, 1, 24, 1)
    points = ends[:, :, :1] + t * (ends[:, :, 1:] - ends[:, :, :1])  # [class, stroke, 24, 2]
    # squared distance of every pixel (i, j) to every stroke point: (i - y)^2 + (j - x)^2, by rows and
    # columns separately (the same two terms and one addition as a sum over the pair, so the same bits)
    axis = torch.arange(side, dtype=torch.float64)
    dy = (axis - points[..., 0:1]) ** 2  # [class, stroke, 24, side]
    dx = (axis - points[..., 1:2]) ** 2
    d2 = dy[..., :, None] + dx[..., None, :]  # [class, stroke, 24, side, side]
    protos = torch.exp(-d2 / 2.0).amax(dim=(1, 2))  # [class, side, side]
    protos = torch.where(protos > 0.1, protos, torch.zeros_like(protos))  # background exactly 0
    labels = torch.arange(n_samples) % n_classes
    shifts = torch.randint(-2, 3, (n_samples, 2), generator=g)
    # each image is its class prototype rolled by its shift: pixel (i, j) comes from (i - dy, j - dx)
    rows = (torch.arange(side) - shifts[:, :1]) % side  # [n, side]
    cols = (torch.arange(side) - shifts[:, 1:]) % side
    images = protos[labels[:, None, None], rows[:, :, None], cols[:, None, :]]
    images = images + 0.1 * torch.randn(images.shape, generator=g, dtype=torch.float64) * (images > 0.05)
    x = images.clamp(0, 1).reshape(n_samples, side * side)
    return Dataset(x, labels, MULTICLASS, n_classes=n_classes)


# ----- real data ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _sklearn(loader_name: str) -> Any:
    """scikit-learn's bundled data set, loaded once per process (reading it costs ~50 ms; a sweep or
    `reproduce` builds it once per seed): callers copy what they use, never change it."""
    try:
        from sklearn import datasets as skd
    except ImportError:
        raise DataError(
            "this data set ships with scikit-learn, which is not installed: pip install 'lossbench[datasets]'"
        ) from None
    return getattr(skd, loader_name)()


def _subsample(
    g: torch.Generator, x: torch.Tensor, y: torch.Tensor, n_samples: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if n_samples is None or n_samples >= len(x):
        return x, y
    keep = torch.randperm(len(x), generator=g)[:n_samples]
    return x[keep], y[keep]


@datasets.register
def digits(g: torch.Generator, *, n_samples: NSamples | None = None) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), pixels scaled to [0, 1]."""
    d = _sklearn("load_digits")
    x = torch.tensor(d.data, dtype=torch.float64) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    x, y = _subsample(g, x, y, n_samples)
    return Dataset(x, y, MULTICLASS, n_classes=10)


@datasets.register
def breast_cancer(g: torch.Generator) -> Dataset:
    """scikit-learn's bundled Wisconsin breast cancer set (569 x 30, binary), standardised."""
    d = _sklearn("load_breast_cancer")
    x = torch.tensor(d.data, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0)
    return _binary(x, torch.tensor(d.target, dtype=torch.long))


@datasets.register
def diabetes(g: torch.Generator) -> Dataset:
    """scikit-learn's bundled diabetes regression set (442 x 10), target standardised."""
    d = _sklearn("load_diabetes")
    x = torch.tensor(d.data, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(d.target, dtype=torch.float64).reshape(-1, 1)
    return Dataset(x, (y - y.mean()) / y.std(), REGRESSION)


def _mnist_bytes(path: str = "data/mnist", n_samples: int | None = None, **_: Any) -> tuple[int, str]:
    """Peak bytes of `mnist`, from the images file's header: the rows kept, as float64 (and a copy)."""
    try:
        n_rows, row = idx_rows(find_idx_file(path, "train-images-idx3-ubyte"))
    except DataError:
        return 0, ""  # reported when the set is built
    n = min(n_rows, n_samples or n_rows)
    return n * row * (1 + 8 * 3), f"{n} images of {row} pixels; use fewer n_samples"


@datasets.register(peak_bytes=_mnist_bytes)
def mnist(g: torch.Generator, *, path: str = "data/mnist", n_samples: NSamples | None = None) -> Dataset:
    """MNIST from a local folder of the standard IDX files (train-images-idx3-ubyte[.gz], ...).

    With `n_samples`, only those images are read (a random subset drawn from the header's count).
    """
    if not os.path.isdir(path):
        raise DataError(f"MNIST folder {path!r} does not exist; MNIST is never downloaded", "data.path")
    images_path = find_idx_file(path, "train-images-idx3-ubyte")
    labels_path = find_idx_file(path, "train-labels-idx1-ubyte")
    n_images, _ = idx_rows(images_path)
    n_labels, label_width = idx_rows(labels_path)
    if n_images != n_labels or label_width != 1:
        raise DataError(f"{path}: {n_images} images but {n_labels} labels of {label_width} bytes each")
    keep = None
    if n_samples is not None and n_samples < n_images:
        keep = torch.randperm(n_images, generator=g)[:n_samples].tolist()  # as _subsample draws it
    images, labels = read_idx(images_path, keep), read_idx(labels_path, keep).reshape(-1).long()
    if len(labels) and int(labels.max()) > 9:
        bad = int((labels > 9).nonzero()[0, 0])
        raise DataError(f"{labels_path} holds label {int(labels[bad])}; MNIST's labels are 0 to 9")
    x = images.reshape(len(images), -1).double() / 255.0
    return Dataset(x, labels, MULTICLASS, n_classes=10)


_recent: OrderedDict[tuple, Dataset] = (
    OrderedDict()
)  # the last few data sets built, so validating then training builds once


def make(name: str, kwargs: dict, seed: int) -> Dataset:
    """Build data set `name` with `kwargs` from a generator seeded with `seed`.

    The result is shared with later calls with the same arguments: treat its tensors as read-only.
    """
    key = (name, repr(sorted(kwargs.items())), seed)
    if key in _recent:
        _recent.move_to_end(key)
        return _recent[key]
    g = torch.Generator().manual_seed(seed)
    dataset = datasets[name].fn(g, **kwargs)
    _recent[key] = dataset
    # keep a sweep's seeds (validated together, then trained) but no more than ~160 MB of inputs
    while len(_recent) > 16 or sum(d.x.numel() for d in _recent.values()) > 20_000_000:
        _recent.popitem(last=False)
        if not _recent:
            break
    return dataset


def split(
    data: Dataset, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A shuffled train/validation split: (x_train, y_train, x_val, y_val)."""
    n = len(data.x)
    n_val = int(n * val_fraction)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    tr, va = order[n_val:], order[:n_val]
    return data.x[tr], data.y[tr], data.x[va], data.y[va]


# other names people use for these (offered by "did you mean", not accepted: one thing, one name)
datasets.alias(
    two_moons="moons",
    make_moons="moons",
    make_circles="circles",
    spiral="spirals",
    make_blobs="blobs",
    separable="linear_separable",
    linear="line",
    constant="constants",
)
