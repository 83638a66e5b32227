"""The training loop, in plain view: batch, forward, loss, backward, read every layer, step.

Every `log_every` steps (and at the first and last step) the loop reads every linear layer and
records a metrics row (`recording` says what a row holds; the stacked sweep engine records through
the same code). Reading the layers only on those steps keeps its cost small; `bench/bench_engine.py`
measures it against a bare loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..components import data as data_module
from ..components.losses import MULTICLASS, loss_target, mean_loss
from ..components.optim import optimizers, schedules
from ..config.schema import Config
from .model import MLP, build_model, device_of, dtype_of
from .recording import LAYER_KEYS, LayerReader, RunRecorder, linear_fit

__all__ = ["LAYER_KEYS", "prepare", "train", "predict_view"]


def prepare(cfg: Config) -> dict[str, Any]:
    """The config's data, split and moved to its device and dtype: a dict of tensors."""
    device, dtype = device_of(cfg), dtype_of(cfg)
    dataset = data_module.make(cfg.data.name, cfg.data.kwargs, cfg.seed)
    x_tr, y_tr, x_va, y_va = data_module.split(dataset, cfg.data.val_fraction, cfg.seed)

    def target(y):
        y = y if dataset.task == MULTICLASS else y.to(dtype)
        return loss_target(cfg.loss.name, y.to(device), dataset.task, dataset.n_outputs, dtype)

    return {
        "dataset": dataset,
        "x": x_tr.to(device, dtype),
        "y": target(y_tr),
        "labels": y_tr.to(device),
        "x_val": x_va.to(device, dtype),
        "y_val": target(y_va),
        "labels_val": y_va.to(device),
    }


def train(
    cfg: Config, log: Callable[[dict], object] | None = None, progress: bool = False
) -> tuple[dict, MLP, dict[str, Any]]:
    """Train the config's model, calling `log(row)` with each metrics row.

    Returns (summary dict, trained model, data dict). A non-finite loss stops training at that
    step and the summary says `diverged`; Ctrl-C stops it with the summary saying `interrupted`.
    """
    torch.manual_seed(cfg.seed)
    d = prepare(cfg)
    x, y, labels = d["x"], d["y"], d["labels"]
    n_train = len(x)
    batch_size, per_epoch, n_steps = cfg.plan(n_train)
    model = build_model(cfg, torch.Generator().manual_seed(cfg.seed + 1)).to(device_of(cfg))
    base_lr = cfg.optim.kwargs["lr"]
    optimizer = optimizers[cfg.optim.name].fn(model.parameters(), **cfg.optim.kwargs)
    schedule = schedules[cfg.optim.schedule.name].fn
    shuffle = torch.Generator().manual_seed(cfg.seed + 2)
    loss_fn = mean_loss(cfg.loss.name, cfg.loss.kwargs, model.output)
    reader = LayerReader(
        [layer.weight for layer in model.layers], [layer.bias for layer in model.layers], cfg
    )
    book = RunRecorder(cfg, d, n_steps, per_epoch, log)  # rows and summary, as the stacked engine's
    bar = progress_bar(n_steps, progress, cfg.name)
    step = 0
    try:
        for step in range(n_steps):
            if step % per_epoch == 0:
                order = torch.randperm(n_train, generator=shuffle).to(x.device)
            idx = order[(step % per_epoch) * batch_size : (step % per_epoch + 1) * batch_size]
            xb, yb, n_batch = x[idx], y[idx], idx.shape[0]  # (len() of a tensor is a slow Python call)
            record = book.records(step)
            book.keep(step, model)

            # forward: keep the pre-activations on recorded steps to read their gradients
            keep: list[torch.Tensor] = []
            z = model(xb, keep=keep if record else None)
            for h in keep:
                h.retain_grad()
            loss = loss_fn(z, yb)

            # backward
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not book.add_loss(step, loss.item(), n_batch):
                break  # the loss is not finite: diverged

            # read every layer (and the batch's accuracy and metrics) before the step changes the weights:
            # `recording.LayerReader` computes the reading, tests/test_train.py checks it by hand
            # (test_activation_statistics_of_every_layer_by_hand)
            if record:
                reading = reader.read(keep)
                batch_metrics = book.batch_metrics(z.detach(), labels[idx])

            # optimizer step with the scheduled learning rate
            lr = base_lr * schedule(step, n_steps, **cfg.optim.schedule.kwargs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()

            if record:
                val = book.evaluate(model, "val", "val_") if book.evaluates(step) else None
                if not book.record_row(step, lr, batch_metrics, val, reader.finish(reading)):
                    break  # a gradient or weight norm is not finite: diverged
                bar.update(step + 1 - bar.n)
    except KeyboardInterrupt:
        book.interrupt()
    bar.close()
    book.keep(step + 1, model, last=True)
    d["snapshots"] = book.weights()
    weight, bias = model.layers[0].parameters()  # a depth-0 model is this one layer: its fit is kept
    summary = book.summary(step, model, linear_fit(weight, bias) if cfg.model.depth == 0 else None)
    summary["engine"] = "plain"
    return summary, model, d


def progress_bar(total: int, enabled: bool, name: str) -> Any:
    import sys

    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=name,
        unit="step",
        leave=False,
        mininterval=0.5,
        disable=not (enabled and sys.stderr.isatty()),
    )


def predict_view(model: MLP, d: dict, n_grid: int = 120) -> dict | None:
    """Data and model predictions for a picture: a 2-D grid of outputs, or a 1-D curve.

    Saved in the run folder so the plots never need the model or the trainer.
    """
    ds = d["dataset"]
    x = ds.x
    if x.shape[1] not in (1, 2) or len(x) > 20000:
        return None
    param = next(model.parameters())
    lo, hi = x.min(0).values, x.max(0).values
    pad = (hi - lo).clamp_min(1e-3) * 0.15
    lo, hi = lo - pad, hi + pad
    with torch.no_grad():
        if x.shape[1] == 1:
            grid = torch.linspace(float(lo[0]), float(hi[0]), 300, dtype=torch.float64).unsqueeze(1)
            out = model.output(model(grid.to(param.device, param.dtype)))
            view = {"kind": "curve", "grid_x": grid.squeeze(1).numpy(), "pred": out.double().cpu().numpy()}
        else:
            gx = torch.linspace(float(lo[0]), float(hi[0]), n_grid, dtype=torch.float64)
            gy = torch.linspace(float(lo[1]), float(hi[1]), n_grid, dtype=torch.float64)
            mesh = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).reshape(-1, 2)
            z = model(mesh.to(param.device, param.dtype)).double().cpu()
            if ds.task == MULTICLASS:
                pred = z.argmax(-1).reshape(n_grid, n_grid)
            else:
                pred = z[:, 0].reshape(n_grid, n_grid)  # logit / score: boundary at 0
            view = {"kind": "boundary", "grid_x": gx.numpy(), "grid_y": gy.numpy(), "pred": pred.numpy()}
    view.update({"x": x.numpy(), "y": ds.y.double().numpy(), "task": ds.task})
    if ds.marks is not None:
        view["marks"] = ds.marks.numpy()
    return view
