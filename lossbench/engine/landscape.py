"""The loss landscape around a run (`python -m lossbench landscape PATH...`): three views, computed.

- **the line** from the initial to the final weights, theta(a) = (1 - a) theta_0 + a theta_1 for a
  in [-0.5, 1.5] (Goodfellow, Vinyals & Saxe 2015), on the training and validation sets;
- **a 2-D slice** around the final weights, theta_1 + x d_1 + y d_2 for x, y in [-span, span], along
  two random directions normalised per filter (Li et al. 2018): each row of a weight matrix (one
  unit's incoming weights) of d is rescaled to the norm of that row of the weights. A unit's bias
  is one more entry of its row (`bias="row"`), or zeroed in d as Li et al.'s code does by default
  (`bias="zero"`; a one-input linear model then has only one direction to move in);
- **the training path**: the weight snapshots a run keeps with `train.snapshots: N`, minus the final
  weights, projected on their first two principal directions (Li et al. section 7), with the loss
  on the plane they span through the final weights and the variance each direction explains.

Each view is evaluated in batches of parameter points: the run's own model called on a stack of
parameter sets with `torch.func.functional_call` under `vmap`, the loss and the common metrics by
the training loop's own code (`engine.recording`). Drawing is `viz.landscape`'s, from the numbers
saved in each run's `figures/landscape.npz` by `lossbench.loss_landscape` (the command).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..config.memory import memory_budget
from ..config.schema import Config
from ..config.validate import build
from ..errors import UserError
from .model import MLP, build_model
from .recording import member_losses, prediction_metrics
from .train import prepare

LINE = np.arange(-20, 61) / 40  # a in [-0.5, 1.5]: 0 and 1 exactly on the grid
CHUNK_BYTES = 64 << 20  # activations of one batch of parameter points: stays in cache-friendly sizes


class Landscape:
    """A run's model, data and weights, ready to evaluate at stacks of parameter points.

    `theta_0` and `theta_1` are the initial and final weights as flat float64 vectors (state_dict
    order); the initial ones are drawn again exactly as the trainer draws them (`build_model`).
    """

    def __init__(self, folder: str, config: dict, n_examples: int | None = None):
        # on the CPU, wherever it trained: the same numbers to float rounding, and a run trained
        # on a GPU can be looked at on a machine without one
        raw = {k: v for k, v in config.items() if k != "sweep"} | {"device": "cpu"}
        self.cfg: Config = build(raw, folder)
        torch.manual_seed(self.cfg.seed)
        d = prepare(self.cfg)
        n = n_examples
        self.sets = {
            "": (d["x"][:n], d["y"][:n], d["labels"][:n]),
            "val_": (d["x_val"][:n], d["y_val"][:n], d["labels_val"][:n]),
        }
        self.model: MLP = build_model(self.cfg, torch.Generator().manual_seed(self.cfg.seed + 1))
        state = self.model.state_dict()
        self.names = list(state)
        self.shapes = [state[k].shape for k in self.names]
        self.sizes = [state[k].numel() for k in self.names]
        self.theta_0 = self.flat(state)
        final = torch.load(os.path.join(folder, "model.pt"), map_location="cpu", weights_only=True)
        self.theta_1 = self.flat(final)
        self.losses = member_losses(self.cfg)
        self.dtype = state[self.names[0]].dtype

    def flat(self, tensors: dict) -> torch.Tensor:
        return torch.cat([torch.as_tensor(tensors[k]).double().reshape(-1) for k in self.names])

    def bytes_per_point(self) -> int:
        """Memory one parameter point needs in a batch: its weights and every layer's activations."""
        n = max(len(s[0]) for s in self.sets.values())
        width = sum(self.model.sizes[1:])
        return (sum(self.sizes) + n * width * 3) * 8

    def values(
        self, coeffs: np.ndarray, basis: torch.Tensor, which: tuple = ("", "val_")
    ) -> dict[str, np.ndarray]:
        """Loss and common metrics at the points coeffs [K, m] @ basis [m, P], on each set in `which`:
        {"loss": [K], "mse": [K], ..., "val_loss": [K], ...} (an empty set gives none)."""
        from torch.func import functional_call, vmap

        def forward(params, x):
            return functional_call(self.model, params, (x,))

        coeffs_t = torch.as_tensor(coeffs, dtype=torch.float64)
        chunk = max(1, CHUNK_BYTES // self.bytes_per_point())
        out: dict[str, list] = {}
        for prefix in which:
            x, y, labels = self.sets[prefix]
            if len(x) == 0:
                continue
            for start in range(0, len(coeffs_t), chunk):
                theta = (coeffs_t[start : start + chunk] @ basis).to(self.dtype)
                k = len(theta)
                parts = theta.split(self.sizes, 1)
                params = {n: p.reshape(k, *s) for n, p, s in zip(self.names, parts, self.shapes)}
                with torch.no_grad():
                    z = vmap(forward, in_dims=(0, None))(params, x)
                    columns: dict[str, list | None] = {"loss": self.losses(z, y.expand(k, *y.shape)).tolist()}
                    expanded = labels.expand(k, *labels.shape)
                    columns |= prediction_metrics(z, expanded, self.cfg.task, self.cfg.model.output)
                for name, v in columns.items():
                    if v is not None:
                        out.setdefault(prefix + name, []).extend(v)
        return {k: np.array(v, dtype=float) for k, v in out.items()}


def directions(landscape: Landscape, seed: int, bias: str = "row") -> torch.Tensor:
    """Two random directions [2, P] normalised per filter (Li et al. 2018), drawn from `seed`.

    Each weight matrix's draw is rescaled row by row (a row: one unit's incoming weights) to the
    norm of that row of the final weights; `bias="row"` counts the unit's bias as one more entry of
    its row, `bias="zero"` sets it to 0 (Li et al.'s default). Drawn in float64, layer by layer,
    the first direction, then the second, whose rows are first made orthogonal to the first's
    (Gram-Schmidt): in a large net two random rows are nearly orthogonal anyway, in a 2-weight
    model they need not be, and the slice would collapse to a line.
    """
    g = torch.Generator().manual_seed(seed)
    rows = []  # each layer's final weights as rows, the bias last with bias="row"
    for i in range(0, len(landscape.names), 2):
        w, b = _layer(landscape, i)
        w = w.reshape(landscape.shapes[i])
        rows.append(torch.cat([w, b[:, None]], 1) if bias == "row" else w)
    draws = [[torch.randn(r.shape, generator=g, dtype=torch.float64) for r in rows] for _ in range(2)]
    out: list[list[torch.Tensor]] = [[], []]
    for r, d1, d2 in zip(rows, *draws):
        d2 = d2 - (d2 * d1).sum(1, keepdim=True) / (d1 * d1).sum(1, keepdim=True) * d1
        for k, d in enumerate((d1, d2)):
            d = d * (r.norm(dim=1, keepdim=True) / (d.norm(dim=1, keepdim=True) + 1e-10))
            zeros = torch.zeros(len(r), dtype=torch.float64)
            out[k] += [d[:, :-1].reshape(-1), d[:, -1]] if bias == "row" else [d.reshape(-1), zeros]
    return torch.stack([torch.cat(parts) for parts in out])


def _layer(landscape: Landscape, i: int) -> list[torch.Tensor]:
    """The final weight and bias of the layer whose weight is parameter i, flat."""
    start, sizes = sum(landscape.sizes[:i]), landscape.sizes[i : i + 2]
    return list(landscape.theta_1[start : start + sum(sizes)].split(sizes))


def principal_path(snapshots: dict, landscape: Landscape) -> dict:
    """The snapshots minus the final weights, projected on their first two principal directions
    (centred PCA by SVD): `path_xy` [K, 2], `path_steps`, `explained` (variance fractions), `pca` [2, P]."""
    theta = np.stack(
        [
            np.concatenate([snapshots[k][i].reshape(-1) for k in landscape.names])
            for i in range(len(snapshots["steps"]))
        ]
    ).astype(np.float64)
    diff = theta - landscape.theta_1.numpy()
    _, s, vt = np.linalg.svd(diff - diff.mean(0), full_matrices=False)
    n = min(2, len(s))
    pca = np.zeros((2, diff.shape[1]))
    pca[:n] = vt[:n]
    explained = np.zeros(2)
    explained[:n] = s[:n] ** 2 / max(float((s**2).sum()), 1e-300)
    return {"path_xy": diff @ pca.T, "path_steps": snapshots["steps"], "explained": explained, "pca": pca}


def _grid(span: float, n: int) -> np.ndarray:
    """`n` points from -span to span, 0 exactly in the middle when `n` is odd."""
    return span * (2 * np.arange(n) - (n - 1)) / max(n - 1, 1)


def compute(
    folder: str,
    config: dict,
    resolution: int = 41,
    span: float = 1.0,
    seed: int = 0,
    bias: str = "row",
    n_examples: int | None = None,
) -> dict:
    """The numbers of every view of the run in `folder` (its resolved `config`), as `landscape.npz`
    holds them (see the module's text)."""
    if n_examples is not None and n_examples < 1:  # the API's check; the command line's type is the same
        raise UserError([("--examples", f"must be an integer from 1, got {n_examples}")], "landscape")
    ls = Landscape(folder, config, n_examples)
    check_memory(ls, resolution)
    theta_0, theta_1 = ls.theta_0, ls.theta_1
    out: dict = {"names": np.array(ls.names), "seed": seed, "bias": bias, "span": span}
    line = ls.values(np.stack([1 - LINE, LINE], 1), torch.stack([theta_0, theta_1]))
    out |= {"line_a": LINE, **{f"line_{k}": v for k, v in line.items()}}
    dirs = directions(ls, seed, bias)
    out |= _plane("slice", ls, theta_1, dirs, _grid(span, resolution), _grid(span, resolution))
    out["directions"] = dirs.numpy().astype(np.float32)
    snaps_path = os.path.join(folder, "snapshots.npz")
    if os.path.isfile(snaps_path):
        with np.load(snaps_path, allow_pickle=False) as f:
            path = principal_path(dict(f), ls)
        xy = path["path_xy"]
        # each axis spans the path and at least half the other's extent, with a margin: a path
        # along one direction alone still shows the ground beside it
        mid, half = (xy.max(0) + xy.min(0)) / 2, (xy.max(0) - xy.min(0)) / 2
        half = np.maximum(half, max(half.max() / 2, 1e-3)) * 1.15
        xs, ys = (np.linspace(mid[i] - half[i], mid[i] + half[i], resolution) for i in (0, 1))
        out |= _plane("path", ls, theta_1, torch.as_tensor(path["pca"]), xs, ys)
        out |= {k: v for k, v in path.items() if k != "pca"} | {"pca": path["pca"].astype(np.float32)}
    return out


def _plane(name: str, ls: Landscape, origin: torch.Tensor, dirs: torch.Tensor, xs, ys) -> dict:
    """Values on the grid origin + x dirs[0] + y dirs[1] ([len(ys), len(xs)], rows along y), train set."""
    gx, gy = np.meshgrid(xs, ys)
    coeffs = np.stack([np.ones(gx.size), gx.ravel(), gy.ravel()], 1)
    values = ls.values(coeffs, torch.cat([origin[None], dirs]), which=("",))
    return {
        f"{name}_x": xs,
        f"{name}_y": ys,
        **{f"{name}_{k}": v.reshape(gx.shape) for k, v in values.items()},
    }


def check_memory(ls: Landscape, resolution: int) -> None:
    """UserError (exit 2) when one batch of points or the grid of values would not fit in memory."""
    need = ls.bytes_per_point() + resolution**2 * 8 * 12 + sum(ls.sizes) * 8 * 8
    if need > memory_budget():
        raise UserError(
            [
                (
                    "--resolution",
                    f"the landscape needs about {need / 2**30:.1f} GiB, more than this machine can spare "
                    f"({memory_budget() / 2**30:.1f} GiB); use a smaller --resolution or fewer --examples",
                )
            ],
            "landscape",
        )
