"""What both training loops record, in one place: the layer reading, the evaluation, rows, summary.

The plain loop (`train.train`) trains one member, the stacked engine (`stacked.train_stacked`) M of
them; here every tensor has a leading member dimension, so both loops record the same numbers by the
same code. Every `log_every` steps (and at the first and last step) a row holds, per member: the
step, the mean loss since the last row, the batch accuracy, the learning rate, the time, the
validation metrics on `eval_every` steps and, for every linear layer, the weight- and bias-gradient
norms, the norm of the gradient flowing back into the layer's output (its pre-activation), the
activation's mean, std, saturated and dead fractions and mean derivative, the weight norm and the
update-to-weight ratio of the step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..components.activations import OUTPUTS, SATURATION, activations, derivative_fn, peak_derivative
from ..components.losses import MULTICLASS, REGRESSION, per_example
from ..config.overrides import component_defaults
from ..config.schema import RUN_FORMAT, Config, common_metrics, higher_is_better

Forward = Callable[[torch.Tensor], torch.Tensor]
"""A model, plain or stacked, as evaluation uses it: inputs -> logits."""

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

OUTPUT_PEAK = {"identity": 1.0, "sigmoid": 0.25, "softmax": float("nan")}
"""The output nonlinearity's largest derivative (softmax has no single one)."""


def member_losses(cfg: Config) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A function (logits z [M, B, ...], prepared targets y [M, B, ...]) -> each member's mean loss [M].

    One mean per member of the unreduced loss, the same arithmetic for every member whatever the
    stack's size (the plain loop trains on the loss's own fused mean, `losses.mean_loss`, which
    may differ from it in the last bit).
    """
    output = OUTPUTS[cfg.model.output]

    def losses(z, y):
        return per_example(cfg.loss.name, cfg.loss.kwargs, z, output, y).reshape(z.shape[0], -1).mean(1)

    return losses


def prediction_metrics(
    z: torch.Tensor, labels: torch.Tensor, task: str, output: str
) -> dict[str, list | None]:
    """Each member's accuracy and the metrics common to every loss, from logits z [M, N, out].

    Whatever loss a run trains with, these put runs on one scale. Regression: `mse` and `mae`, the
    mean squared and absolute error of the output in the target's units (no 1/2), `acc` None.
    Classification: `acc`, and `nll` where the output defines probabilities: the mean negative
    log-likelihood of the labels (Bernoulli for a sigmoid output, summed over the outputs of a
    multi-class one; categorical for softmax), from the logits, as the losses compute it.
    """
    n_members = z.shape[0]

    def per_member(t):
        return t.reshape(n_members, -1).mean(1)

    if task == REGRESSION:
        error = OUTPUTS[output](z) - labels.to(z.dtype)
        mse, mae = torch.stack([per_member(error.square()), per_member(error.abs())]).tolist()
        return {"acc": None, "mse": mse, "mae": mae}
    if task == MULTICLASS:
        hit = z.argmax(-1) == labels
    else:  # binary: the logit's sign (a sigmoid output above 1/2, a hinge score above 0)
        hit = (z.squeeze(-1) > 0) == (labels.squeeze(-1) > 0.5)
    columns = {"acc": hit.reshape(n_members, -1).sum(1, dtype=z.dtype)}  # counts, divided in Python
    if output == "softmax":
        columns["nll"] = per_member(F.cross_entropy(z.flatten(0, -2), labels.flatten(), reduction="none"))
    elif output == "sigmoid":
        target = F.one_hot(labels, z.shape[-1]).to(z.dtype) if task == MULTICLASS else labels.to(z.dtype)
        nll = F.binary_cross_entropy_with_logits(z, target, reduction="none").sum(-1)
        columns["nll"] = per_member(nll)
    values = dict(zip(columns, torch.stack(list(columns.values())).tolist()))
    n = hit[0].numel()
    values["acc"] = [c / n for c in values["acc"]]
    return values


def linear_fit(weight: torch.Tensor, bias: torch.Tensor) -> dict:
    """A depth-0 model's fitted weight [out, in] and bias [out], as lists for the summary."""
    return {"weight": weight.detach().cpu().tolist(), "bias": bias.detach().cpu().tolist()}


class LayerReader:
    """Reads the per-layer statistics of one step: `read` after backward, `finish` after the step.

    `weights` and `biases` hold one tensor per layer with the members first ([M, ...]); a plain run
    gives its nn.Linear tensors as they are, one member. The hidden layers share one width, so
    their pre-activations are stacked and read in one go; nothing is copied to Python until
    `finish`, which makes a reading cost a few dozen tensor ops whatever the depth and member count.
    """

    def __init__(self, weights: list, biases: list, cfg: Config, n_members: int = 1):
        self.weights, self.biases, self.n_members = weights, biases, n_members
        act = cfg.model.activation
        self.hidden_fn = activations[act.name].fn(**act.kwargs)
        self.hidden_deriv = derivative_fn(act.name, act.kwargs)
        self.hidden_peak = peak_derivative(act.name, act.kwargs)
        self.output_name = cfg.model.output
        self.out_fn = OUTPUTS[self.output_name]
        self.out_deriv = derivative_fn("identity" if self.output_name == "softmax" else self.output_name, {})

    def _norms(self, tensors) -> torch.Tensor:
        """[len(tensors), M]: each member's 2-norm of each tensor, the same arithmetic at any M."""
        return torch.stack([torch.linalg.vector_norm(t.reshape(self.n_members, -1), dim=1) for t in tensors])

    @staticmethod
    def _activation_sums(fn, fn_deriv, h, peak):
        """[5, L, M] sums over h [L, M, B, W]: mean of fn, squared deviations from it, saturated
        units, dead units (saturated on every example) and abs derivatives; `finish` divides them.

        Written for few tensor ops, because on a small net a reading is dozens of tiny ops, each
        costing microseconds of dispatch: the std is two-pass by hand (torch.std is up to 3 times
        slower at these sizes).
        """
        a = fn(h)
        deriv = fn_deriv(h, a).abs()
        threshold = SATURATION * peak
        mean = a.mean((2, 3), keepdim=True)
        return torch.stack(
            [
                mean.view(mean.shape[:2]),
                (a - mean).square().sum((2, 3)),
                (deriv < threshold).sum((2, 3), dtype=a.dtype),
                (deriv.amax(2) < threshold).sum(2, dtype=a.dtype),
                deriv.sum((2, 3)),
            ]
        )

    @torch.inference_mode()
    def read(self, pre_activations: list) -> torch.Tensor:
        """Gradient norms, weight norms and activation sums of every layer: [9, L, M], no sync.

        Rows: grad_w, grad_b, grad_out, the five sums of `_activation_sums`, weight norm.
        """
        n_layers, n_members = len(self.weights), self.n_members
        self.before = [w.clone() for w in self.weights]
        # per layer: values the sums run over (batch x width), the width, and what "saturated" counts
        batch = pre_activations[0].shape[-2]
        self.n_values = [batch * h.shape[-1] for h in pre_activations]
        self.widths = [h.shape[-1] for h in pre_activations]
        self.n_saturable = list(self.n_values)
        grads = [w.grad for w in self.weights] + [b.grad for b in self.biases]
        norms = self._norms(grads + [h.grad for h in pre_activations] + self.before)
        norms = norms.view(4, n_layers, n_members)
        out = pre_activations[-1].reshape(1, n_members, batch, -1)
        if self.output_name == "softmax":
            p = self.out_fn(out)
            mean = p.mean((2, 3), keepdim=True)
            confident = (p.amax(-1) > 0.99).sum(2, dtype=p.dtype)  # examples, not units
            self.n_saturable[-1] = batch
            nan = torch.full_like(confident, float("nan"))
            act = torch.stack([mean.view(1, -1), (p - mean).square().sum((2, 3)), confident, nan, nan])
        else:
            act = self._activation_sums(self.out_fn, self.out_deriv, out, OUTPUT_PEAK[self.output_name])
        if n_layers > 1:
            hidden = torch.stack(pre_activations[:-1]).view(n_layers - 1, n_members, batch, -1)
            hidden_sums = self._activation_sums(self.hidden_fn, self.hidden_deriv, hidden, self.hidden_peak)
            act = torch.cat([hidden_sums, act], 1)
        return torch.cat([norms[:3], act, norms[3:]])

    @torch.inference_mode()
    def finish(self, reading: torch.Tensor) -> list[dict]:
        """Each member's per-layer columns, adding the update-to-weight ratio of the step just taken.

        One copy to Python for every member; the divisions then run on Python floats (a torch
        division of a one-element tensor may round differently, and these are cheaper).
        """
        moved = self._norms(torch._foreach_sub(self.weights, self.before)).unsqueeze(0)
        table = torch.cat([reading, moved]).permute(2, 0, 1).tolist()  # [M][10 rows][layers]
        return [self._columns(*member) for member in table]

    def _columns(self, grad_w, grad_b, grad_out, mean, square_dev, sat, dead, deriv, weight, step_norm):
        n_values = self.n_values
        return {
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


class Recorder:
    """The rows and summaries of M members trained side by side in one loop (the plain loop: M = 1).

    It keeps each member's running loss between rows, which members still run, when each diverged
    and reached its target, and its first and last rows; it evaluates the members' data sets, given
    with the members first: `sets["train"]` and `sets["val"]` are (x, prepared y, labels).
    """

    def __init__(self, cfgs: list[Config], task: str, n_steps: int, per_epoch: int, logs: list, sets: dict):
        self.cfgs, self.task, self.n_steps, self.per_epoch, self.sets = cfgs, task, n_steps, per_epoch, sets
        self.logs = [log or (lambda row: None) for log in logs]
        self.log_every = cfgs[0].train.log_every
        self.eval_every = cfgs[0].train.eval_every or self.log_every
        self.losses = member_losses(cfgs[0])
        self.output = cfgs[0].model.output
        self.common = common_metrics(task, self.output)
        n = len(cfgs)
        self.loss_sum, self.n_seen = [0.0] * n, 0
        self.running = list(range(n))
        self.status: list[str] = ["finished"] * n
        self.diverged_step: list[int | None] = [None] * n
        self.targets = [_targets(c) for c in cfgs]
        self.first: list[dict] = [{} for _ in cfgs]
        self.last: list[dict] = [{} for _ in cfgs]
        n_snaps = cfgs[0].train.snapshots
        self.snapshot_steps = {round(k * n_steps / n_snaps) for k in range(n_snaps)} if n_snaps else set()
        self.kept: list[tuple[int, list[torch.Tensor]]] = []
        self.start = time.perf_counter()

    def keep_weights(self, step: int, params: Callable[[], list], last: bool = False) -> None:
        """Keep a float32 copy of the weights after `step` steps where `train.snapshots` asks (its N
        evenly spaced steps from 0, and `last`, the final weights): `params()` gives every parameter
        as a plain model's state_dict orders and shapes it, with the members first."""
        if step in self.snapshot_steps or (last and self.snapshot_steps):
            self.kept.append((step, [p.detach().to("cpu", torch.float32, copy=True) for p in params()]))

    def snapshots(self, m: int) -> dict | None:
        """Member m's kept weights for `snapshots.npz`: `steps` [K] and each state_dict key [K, ...]."""
        if not self.kept:
            return None
        names = [f"layers.{i // 2}.{('weight', 'bias')[i % 2]}" for i in range(len(self.kept[0][1]))]
        out = {"steps": torch.tensor([s for s, _ in self.kept]).numpy()}
        return out | {k: torch.stack([ps[i][m] for _, ps in self.kept]).numpy() for i, k in enumerate(names)}

    def records(self, step: int) -> bool:
        return step % self.log_every == 0 or step == self.n_steps - 1

    def evaluates(self, step: int) -> bool:
        return step % self.eval_every == 0 or step == self.n_steps - 1

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def add_losses(self, step: int, values: list[float], n_batch: int) -> bool:
        """Add each member's batch loss; a non-finite one ends its member (`diverged`).

        Returns whether any member still runs.
        """
        if not math.isfinite(sum(values)):  # rare: find the members whose loss is not finite
            for m in list(self.running):
                if not math.isfinite(values[m]):
                    row = {"step": step, "epoch": step / self.per_epoch, "loss": values[m]}
                    self.logs[m]({**row, "time": self.elapsed(), "diverged": True})
                    self._stop(m, "diverged", step)
        for m in self.running:
            self.loss_sum[m] += values[m] * n_batch
        self.n_seen += n_batch
        return bool(self.running)

    def predictions(self, z: torch.Tensor, labels: torch.Tensor) -> dict[str, list | None]:
        """Each member's accuracy and common metrics (`prediction_metrics`) for logits z [M, N, out]."""
        return prediction_metrics(z, labels, self.task, self.output)

    @torch.inference_mode()
    def evaluate(self, forward: Forward, which: str, prefix: str) -> list[dict]:
        """Mean loss, accuracy and common metrics of every member on its own whole set `which`."""
        x, y, labels = self.sets[which]
        if x.shape[1] == 0:
            return [{f"{prefix}{k}": None for k in ["loss", "acc", *self.common]}] * len(self.cfgs)
        z = forward(x)
        loss, metrics = self.losses(z, y).tolist(), self.predictions(z, labels)
        return [
            {f"{prefix}loss": loss[m], **{f"{prefix}{k}": v and v[m] for k, v in metrics.items()}}
            for m in range(len(loss))
        ]

    def record(self, step: int, lrs: list[float], batch: dict, val: list | None, layers: list) -> bool:
        """Log each running member's row; a non-finite gradient or weight norm ends its member.

        `batch` holds the `predictions` on the step's batch. Returns whether any member still runs.
        """
        elapsed = self.elapsed()
        for m in list(self.running):
            row = {
                "step": step,
                "epoch": step / self.per_epoch,
                "loss": self.loss_sum[m] / self.n_seen,
                **{k: v and v[m] for k, v in batch.items()},
                "lr": lrs[m],
                "time": elapsed,
                **(val[m] if val else {}),
                **layers[m],
            }
            if not all(math.isfinite(v) for v in row["grad_w"] + row["weight_norm"]):
                row["diverged"] = True
                self._stop(m, "diverged", step)
            self.logs[m](row)
            self.first[m], self.last[m] = self.first[m] or row, row
            for target in self.targets[m]:
                value = row.get(target["metric"])
                if target["steps_to"] is None and value is not None and _reached(target, value):
                    target["steps_to"], target["seconds_to"] = step, elapsed
        self.loss_sum, self.n_seen = [0.0] * len(self.cfgs), 0
        return bool(self.running)

    def _stop(self, m: int, status: str, step: int | None = None) -> None:
        self.status[m], self.diverged_step[m] = status, step
        self.running.remove(m)

    def interrupt(self) -> None:
        """Ctrl-C: every running member stops as `interrupted`."""
        for m in list(self.running):
            self._stop(m, "interrupted")

    def summaries(self, step: int, forward: Forward, n_params: int, linear: list | None = None) -> list[dict]:
        """One summary per member, after the loop stopped at `step`, with its final metrics.

        Final metrics are a full pass over the train set with the final weights; the validation
        metrics of the row recorded after the last step (same weights, same data) are reused.
        `linear`: a depth-0 model's `linear_fit` per member.
        """
        finals: list[dict] = [{} for _ in self.cfgs]
        if any(s != "diverged" for s in self.status):
            train = self.evaluate(forward, "train", "final_train_")
            final_rows = [row for row in self.last if row.get("step") == self.n_steps - 1]
            if len(final_rows) == len(self.cfgs) and all("val_loss" in row for row in final_rows):
                val = [
                    {f"final_{k}": v for k, v in row.items() if k.startswith("val_")} for row in final_rows
                ]
            else:
                val = self.evaluate(forward, "val", "final_val_")
            finals = [{**a, **b} for a, b in zip(train, val)]
        wall = self.elapsed()
        summaries = []
        for m in range(len(self.cfgs)):
            done = self.status[m] != "diverged"
            summaries.append(
                {
                    "format": RUN_FORMAT,
                    "status": self.status[m],
                    "steps": self.n_steps,
                    "steps_done": (self.diverged_step[m] if self.diverged_step[m] is not None else step + 1)
                    if self.n_steps
                    else 0,
                    "epochs": self.n_steps / self.per_epoch,
                    "diverged_step": self.diverged_step[m],
                    **(finals[m] if done else {}),
                    **({"linear": linear[m]} if linear and done else {}),
                    "targets": [dict(t) for t in self.targets[m]],
                    "grad_ratio_first_last": hidden_ratio(self.first[m]),
                    "grad_ratio_first_last_end": hidden_ratio(self.last[m]),
                    "wall_time": wall,
                    "stack_size": len(self.cfgs),  # runs trained together, whose clock wall_time is
                    "n_params": n_params,
                    "task": self.task,
                    **drawing_facts(self.cfgs[m]),
                }
            )
        return summaries


def member_sets(ds: list[dict]) -> dict:
    """The train and validation sets of members' `prepare` dicts, stacked members first."""

    def stack(key):
        return torch.stack([d[key] for d in ds])

    return {
        "train": (stack("x"), stack("y"), stack("labels")),
        "val": tuple(map(stack, ("x_val", "y_val", "labels_val"))),
    }


class RunRecorder(Recorder):
    """The `Recorder` of the plain loop's one run, in the singular: the stack's lists of one member
    (`[cfg]`, `[loss]`, `[lr]`, the leading 1 of its tensors) are made here, once."""

    def __init__(
        self, cfg: Config, d: dict, n_steps: int, per_epoch: int, log: Callable[[dict], object] | None
    ):
        super().__init__([cfg], d["dataset"].task, n_steps, per_epoch, [log], member_sets([d]))

    def keep(self, step: int, model: torch.nn.Module, last: bool = False) -> None:
        """The weights at `step`, when `train.snapshots` asks for them."""
        self.keep_weights(step, lambda: [p[None] for p in model.parameters()], last=last)

    def add_loss(self, step: int, loss: float, n_batch: int) -> bool:
        """The batch's mean loss; False when it is not finite (the run diverged)."""
        return self.add_losses(step, [loss], n_batch)

    def batch_metrics(self, z: torch.Tensor, labels: torch.Tensor) -> dict:
        return self.predictions(z[None], labels[None])

    def record_row(self, step: int, lr: float, batch: dict, val: list | None, layers: list) -> bool:
        """Log the step's row; False when a gradient or weight norm is not finite (diverged)."""
        return self.record(step, [lr], batch, val, layers)

    def weights(self) -> dict | None:
        """The weight snapshots kept (`train.snapshots`), or None."""
        return self.snapshots(0)

    def summary(self, step: int, model: torch.nn.Module, linear: dict | None) -> dict:
        n_params = sum(p.numel() for p in model.parameters())
        return self.summaries(step, model, n_params, None if linear is None else [linear])[0]


def drawing_facts(cfg: Config) -> dict:
    """What the figures need that only the registries know, recorded so that `plot` never loads
    torch: each component's keyword defaults (labels leave them out) and the hidden activation's
    peak derivative with the saturation threshold, a fraction of it (activation health)."""
    act = cfg.model.activation
    return {
        "defaults": component_defaults(cfg.to_dict()),
        "activation": {"peak_derivative": peak_derivative(act.name, act.kwargs), "saturation": SATURATION},
    }


def _targets(cfg: Config) -> list[dict]:
    """A member's targets, not yet reached: `train.target_loss` (on `loss`) first, then `train.target`.

    The summary's `targets` holds them as {metric, value, steps_to, seconds_to}, the one shape every
    reader (the printed summary, the sweep table, the figures, the report) reads.
    """
    loss = [{"metric": "loss", "value": cfg.train.target_loss}] if cfg.train.target_loss is not None else []
    return [{**t, "steps_to": None, "seconds_to": None} for t in loss + list(cfg.train.target or [])]


def _reached(target: dict, value: float) -> bool:
    """Accuracy targets are reached at or above their value, every other metric at or below it."""
    return value >= target["value"] if higher_is_better(target["metric"]) else value <= target["value"]


def hidden_ratio(row: dict) -> float | None:
    """Back-propagated gradient norm into the first hidden layer over that into the last one.

    Below 1 the gradient shrinks on its way to the input (vanishing), above 1 it grows. None for
    fewer than two hidden layers.
    """
    g = row.get("grad_out") or []
    if len(g) < 3 or not g[-2] or not all(math.isfinite(v) for v in g[:-1]):
        return None
    return g[0] / g[-2]
