"""The training loop, in plain view: batch, forward, loss, backward, read every layer, step.

Every `log_every` steps (and at the first and last step) the loop records, for every linear layer:
the weight- and bias-gradient norms, the norm of the gradient flowing back into the layer's output
(its pre-activation), the activation's mean, std, saturated and dead fractions and mean derivative,
the weight norm and the update-to-weight ratio of the step. Reading the layers only on those steps
keeps its cost small; `bench/bench_engine.py` measures it against a bare loop.
"""

from __future__ import annotations

import math
import time

import torch

from ..components import data as data_module
from ..components.activations import OUTPUTS, SATURATION, derivative_fn, peak_derivative
from ..components.losses import BINARY, MULTICLASS, loss_target, mean_loss
from ..components.optim import optimizers, schedules
from ..config.schema import Config
from ..config.validate import plan
from .model import MLP, build_model, device_of, dtype_of

LAYER_KEYS = [
    "grad_w",
    "grad_b",
    "grad_out",
    "act_mean",
    "act_std",
    "act_saturated",
    "act_dead",
    "act_deriv",
    "weight_norm",
    "update_ratio",
]
"""Per-layer columns of a metrics row, one value per linear layer, input layer first."""


def prepare(cfg: Config):
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


def n_correct(z, labels, task: str):
    """How many predictions match the labels (regression: 0, accuracy is not defined)."""
    if task == MULTICLASS:
        return (z.argmax(-1) == labels).sum()
    if task == BINARY:
        return ((z.squeeze(-1) > 0) == (labels.squeeze(-1) > 0.5)).sum()
    return z.new_zeros(())


def train(cfg: Config, log=None, progress: bool = False):
    """Train the config's model, calling `log(row)` with each metrics row.

    Returns (summary dict, trained model, data dict). A non-finite loss stops training at that
    step and the summary says `diverged`; Ctrl-C stops it with the summary saying `interrupted`.
    """
    torch.manual_seed(cfg.seed)
    d = prepare(cfg)
    task = d["dataset"].task
    x, y, labels = d["x"], d["y"], d["labels"]
    n_train = len(x)
    batch_size, per_epoch, n_steps = plan(cfg, n_train)
    model = build_model(cfg, torch.Generator().manual_seed(cfg.seed + 1)).to(device_of(cfg))
    base_lr = cfg.optim.kwargs["lr"]
    optimizer = optimizers[cfg.optim.name].fn(model.parameters(), **cfg.optim.kwargs)
    schedule = schedules[cfg.optim.schedule.name].fn
    shuffle = torch.Generator().manual_seed(cfg.seed + 2)
    loss_fn = mean_loss(cfg.loss.name, cfg.loss.kwargs, model.output)
    reader = LayerReader(model, cfg)
    log_every, eval_every = cfg.train.log_every, cfg.train.eval_every or cfg.train.log_every
    loss_sum, n_seen = 0.0, 0
    steps_to_target = seconds_to_target = None
    status, diverged_step, first, last = "finished", None, {}, {}
    bar = _progress(n_steps, progress, cfg.name)
    start = time.perf_counter()
    step = 0
    try:
        for step in range(n_steps):
            if step % per_epoch == 0:
                order = torch.randperm(n_train, generator=shuffle).to(x.device)
            idx = order[(step % per_epoch) * batch_size : (step % per_epoch + 1) * batch_size]
            xb, yb, n_batch = x[idx], y[idx], idx.shape[0]  # (len() of a tensor is a slow Python call)
            record = step % log_every == 0 or step == n_steps - 1

            # forward: keep the pre-activations on recorded steps to read their gradients
            if record:
                keep = []
                z = model(xb, keep=keep)
                for h in keep:
                    h.retain_grad()
            else:
                z = model(xb)
            loss = loss_fn(z, yb)

            # backward
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                status, diverged_step = "diverged", step
                log and log(
                    reader.diverged_row(step, step / per_epoch, loss_value, time.perf_counter() - start)
                )
                break
            loss_sum += loss_value * n_batch
            if record and task != "regression":  # accuracy of this batch only: cheap
                correct = int(n_correct(z.detach(), labels[idx], task)) / n_batch
            n_seen += n_batch

            # read every layer before the step changes the weights
            if record:
                reading = reader.read(keep)

            # optimizer step with the scheduled learning rate
            lr = base_lr * schedule(step, n_steps, **cfg.optim.schedule.kwargs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()

            if record:
                row = {
                    "step": step,
                    "epoch": step / per_epoch,
                    "loss": loss_sum / n_seen,
                    "acc": correct if task != "regression" else None,
                    "lr": lr,
                    "time": time.perf_counter() - start,
                }
                if step % eval_every == 0 or step == n_steps - 1:
                    row.update(evaluate(model, cfg, d["x_val"], d["y_val"], d["labels_val"], task, "val_"))
                row.update(reader.finish(reading))
                if not all(math.isfinite(v) for v in reader.last_norms):
                    status, diverged_step = "diverged", step
                    row["diverged"] = True
                log and log(row)
                first, last = first or row, row
                if (
                    steps_to_target is None
                    and cfg.train.target_loss is not None
                    and row["loss"] <= cfg.train.target_loss
                ):
                    steps_to_target, seconds_to_target = step, row["time"]
                loss_sum, n_seen = 0.0, 0
                bar.update(step + 1 - bar.n)
                if status == "diverged":
                    break
    except KeyboardInterrupt:
        status = "interrupted"
    bar.close()
    summary = {
        "status": status,
        "steps": n_steps,
        "steps_done": (diverged_step if diverged_step is not None else step + 1) if n_steps else 0,
        "epochs": n_steps / per_epoch,
        "diverged_step": diverged_step,
        **(
            final_pass(model, cfg, d, task, last if last.get("step") == n_steps - 1 else None)
            if status != "diverged"
            else {}
        ),
        "target_loss": cfg.train.target_loss,
        "steps_to_target": steps_to_target,
        "seconds_to_target": seconds_to_target,
        "grad_ratio_first_last": hidden_ratio(first),
        "grad_ratio_first_last_end": hidden_ratio(last),
        "wall_time": time.perf_counter() - start,
        "n_params": sum(p.numel() for p in model.parameters()),
        "task": task,
    }
    return summary, model, d


def evaluate(model: MLP, cfg: Config, x, y, labels, task: str, prefix: str) -> dict:
    """Mean loss (and accuracy) of `model` on a whole set, without gradients."""
    if len(x) == 0:
        return {f"{prefix}loss": None, f"{prefix}acc": None}
    with torch.inference_mode():
        z = model(x)
        loss = mean_loss(cfg.loss.name, cfg.loss.kwargs, model.output)(z, y).item()
        acc = int(n_correct(z, labels, task)) / len(x) if task != "regression" else None
    return {f"{prefix}loss": loss, f"{prefix}acc": acc}


class LayerReader:
    """Reads the per-layer statistics of one step: `read` after backward, `finish` after the step.

    The hidden layers share one width, so their pre-activations are stacked and read in one go;
    nothing is copied to Python until `finish`, which makes a reading cost a few dozen tensor ops
    whatever the depth.
    """

    def __init__(self, model: MLP, cfg: Config):
        self.model = model
        self.layers = list(model.layers)
        self.weights = [layer.weight for layer in self.layers]
        act = cfg.model.activation
        self.hidden_fn = model.act
        self.hidden_deriv = derivative_fn(act.name, act.kwargs)
        self.out_fn = OUTPUTS[model.output_name]
        out_name = model.output_name if model.output_name != "softmax" else "identity"
        self.out_deriv = derivative_fn(out_name, {})
        self.hidden_peak = peak_derivative(act.name, act.kwargs)
        self.out_peak = {"identity": 1.0, "sigmoid": 0.25, "softmax": float("nan")}[model.output_name]
        self.last_norms = []

    @staticmethod
    def _activation_sums(fn, fn_deriv, h, peak):
        """[5, L] sums over h [L, B, W]: mean of fn, squared deviations from it, saturated units,
        dead units (saturated on every example) and abs derivatives; `finish` divides them.

        Written for few tensor ops, because on a small net a reading is dozens of tiny ops, each
        costing microseconds of dispatch: the std is two-pass by hand (torch.std is up to 3 times
        slower at these sizes) and the divisions and square roots wait for Python floats.
        """
        a = fn(h)
        deriv = fn_deriv(h, a).abs()
        threshold = SATURATION * peak
        mean = a.mean((1, 2), keepdim=True)
        return torch.stack(
            [
                mean.view(-1),
                (a - mean).square().sum((1, 2)),
                (deriv < threshold).sum((1, 2), dtype=a.dtype),
                (deriv.amax(1) < threshold).sum(1, dtype=a.dtype),
                deriv.sum((1, 2)),
            ]
        )

    @torch.inference_mode()
    def read(self, pre_activations) -> torch.Tensor:
        """Gradient norms, weight norms and activation sums of every layer: [9, n_layers], no sync.

        Rows: grad_w, grad_b, grad_out, the five sums of `_activation_sums`, weight norm.
        """
        self.before = [w.clone() for w in self.weights]
        # per layer: values the sums run over (batch x width), the width, and what "saturated" counts
        self.n_values = [h.shape[0] * h.shape[1] for h in pre_activations]
        self.widths = [h.shape[1] for h in pre_activations]
        self.n_saturable = list(self.n_values)
        tensors = [w.grad for w in self.weights] + [layer.bias.grad for layer in self.layers]
        tensors += [h.grad for h in pre_activations] + self.before
        norms = torch.stack(torch._foreach_norm(tensors)).view(4, len(self.layers))
        out = pre_activations[-1].unsqueeze(0)
        if self.model.output_name == "softmax":
            p = self.out_fn(out)
            mean = p.mean((1, 2), keepdim=True)
            confident = (p.amax(-1) > 0.99).sum(1, dtype=p.dtype)  # examples, not units
            self.n_saturable[-1] = p.shape[1]
            nan = torch.full_like(confident, float("nan"))
            act = torch.stack([mean.view(-1), (p - mean).square().sum((1, 2)), confident, nan, nan])
        else:
            act = self._activation_sums(self.out_fn, self.out_deriv, out, self.out_peak)
        if len(self.layers) > 1:
            hidden = torch.stack(pre_activations[:-1])
            act = torch.cat(
                [self._activation_sums(self.hidden_fn, self.hidden_deriv, hidden, self.hidden_peak), act], 1
            )
        return torch.cat([norms[:3], act, norms[3:]])

    @torch.inference_mode()
    def finish(self, reading: torch.Tensor) -> dict:
        """The row's per-layer columns, adding the update-to-weight ratio of the step just taken."""
        moved = torch.stack(torch._foreach_norm(torch._foreach_sub(self.weights, self.before)))
        grad_w, grad_b, grad_out, mean, square_dev, sat, dead, deriv, weight, step_norm = torch.cat(
            [reading, moved.unsqueeze(0)]
        ).tolist()
        n_values = self.n_values
        out = {
            "grad_w": grad_w,
            "grad_b": grad_b,
            "grad_out": grad_out,
            "act_mean": mean,
            "act_std": [math.sqrt(v / (n - 1)) if n > 1 else math.nan for v, n in zip(square_dev, n_values)],
            "act_saturated": [v / n for v, n in zip(sat, self.n_saturable)],
            "act_dead": [v / w for v, w in zip(dead, self.widths)],
            "act_deriv": [v / n for v, n in zip(deriv, n_values)],
            "weight_norm": weight,
            "update_ratio": [m / max(w, 1e-30) for m, w in zip(step_norm, weight)],
        }
        self.last_norms = grad_w + weight
        return out

    def diverged_row(self, step, epoch, loss, elapsed) -> dict:
        return {"step": step, "epoch": epoch, "loss": loss, "time": elapsed, "diverged": True}


def final_pass(model: MLP, cfg: Config, d: dict, task: str, last_row: dict | None = None) -> dict:
    """Final metrics: a full pass over the train and validation sets with the final weights.

    `last_row`, the row recorded after the last step, already holds the validation metrics of the
    final weights (the same function on the same data): they are reused rather than recomputed.
    """
    if last_row is not None and "val_loss" in last_row:
        val = {"final_val_loss": last_row["val_loss"], "final_val_acc": last_row["val_acc"]}
    else:
        val = evaluate(model, cfg, d["x_val"], d["y_val"], d["labels_val"], task, "final_val_")
    return {**evaluate(model, cfg, d["x"], d["y"], d["labels"], task, "final_train_"), **val}


def hidden_ratio(row: dict) -> float | None:
    """Back-propagated gradient norm into the first hidden layer over that into the last one.

    Below 1 the gradient shrinks on its way to the input (vanishing), above 1 it grows. None for
    fewer than two hidden layers.
    """
    g = row.get("grad_out") or []
    if len(g) < 3 or not g[-2] or not all(math.isfinite(v) for v in g[:-1]):
        return None
    return g[0] / g[-2]


def _progress(total: int, enabled: bool, name: str):
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
