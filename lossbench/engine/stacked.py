"""The stacked engine: many runs of one shape trained as one model, each with its own seed and rate.

A tiny MLP step costs far less arithmetic than framework overhead, so training M members one after
another wastes the machine. Here member m's layer i is slice m of a weight tensor [M, in, out] and
one `baddbmm` computes every member's layer at once. Nothing mixes across members: the loss that is
back-propagated is the sum of the members' mean losses, so member m's gradient is exactly the one
its own run would get, and the optimizer updates are elementwise with a learning rate of shape
[M, 1, 1].

Every member records what `lossbench.engine.train.train` records for its config, within floating-point
tolerance (`tests/test_batched.py` shows it): the same data (`data.make` and `data.split` with its
seed), the same init (`build_model` with `Generator(seed + 1)`), the same data order
(`Generator(seed + 2)`, one `randperm` per epoch), the same rows on the same steps. The one
difference: `time` in a row (and `wall_time`, `seconds_to_target` in the summary) is the wall time of
the whole stacked group, and the summary says how many members were stacked (`stacked`).
"""

from __future__ import annotations

import math
import os
import time

import torch

from ..components.activations import OUTPUTS, SATURATION, derivative_fn, peak_derivative
from ..components.losses import per_example
from ..components.optim import schedules
from ..config.schema import Config
from ..config.validate import plan
from .model import build_model, device_of
from .train import LAYER_KEYS, hidden_ratio, prepare

STACKABLE_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
PER_MEMBER = {"seed", "optim.lr", "model.init", "model.bias_init", "train.target_loss"}
"""Config keys that may differ between the members of one stack; everything else must be equal."""


def group_key(cfg: Config) -> str:
    """Members with the same key can be stacked: same data set, shapes, loss, optimizer, steps."""
    import json

    d = cfg.to_dict()
    d.pop("seed")
    d["optim"] = {k: v for k, v in d["optim"].items() if k != "lr"}
    d["model"] = {k: v for k, v in d["model"].items() if k not in ("init", "bias_init")}
    d["train"] = {k: v for k, v in d["train"].items() if k != "target_loss"}
    return json.dumps(d, sort_keys=True, default=str)


def can_stack(cfg: Config) -> bool:
    """Whether the stacked engine supports this config (else it runs as a plain run)."""
    return cfg.optim.name in STACKABLE_OPTIMIZERS


class StackedOptimizer:
    """torch.optim's SGD, Adam, AdamW and RMSprop update rules with one learning rate per member.

    The formulas follow torch.optim's single-tensor code line by line; each is elementwise, so
    applying it to a stacked tensor with `lr` of shape [M, 1, 1] is the same as M separate optimizers.
    """

    def __init__(self, name: str, params: list, kwargs: dict):
        self.name, self.params, self.kw = name, params, kwargs
        self.state = [{} for _ in params]
        self.t = 0

    def step(self, lrs: list[float]) -> None:
        p0 = self.params[0]
        lr = torch.tensor(lrs, dtype=p0.dtype, device=p0.device).reshape(-1, 1, 1)
        self.t += 1
        with torch.no_grad():
            getattr(self, "_" + self.name)(lr, lrs)

    def _sgd(self, lr, lrs):
        kw = self.kw
        mom, wd, damp = kw.get("momentum", 0.0), kw.get("weight_decay", 0.0), kw.get("dampening", 0.0)
        for p, st in zip(self.params, self.state):
            d = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
            if mom != 0:
                buf = st.get("buf")
                if buf is None:
                    buf = st["buf"] = d.detach().clone()
                else:
                    buf.mul_(mom).add_(d, alpha=1 - damp)
                d = d.add(buf, alpha=mom) if kw.get("nesterov") else buf
            p.addcmul_(d, lr, value=-1)

    def _adam(self, lr, lrs, decoupled: bool = False):
        (b1, b2), eps, wd = (
            self.kw.get("betas", (0.9, 0.999)),
            self.kw.get("eps", 1e-8),
            self.kw["weight_decay"],
        )
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        step_size = torch.tensor([v / bc1 for v in lrs], dtype=lr.dtype, device=lr.device).reshape(-1, 1, 1)
        for p, st in zip(self.params, self.state):
            g = p.grad
            if wd != 0:
                if decoupled:
                    p.mul_(1 - lr * wd)
                else:
                    g = g.add(p, alpha=wd)
            if not st:
                st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
            st["m"].lerp_(g, 1 - b1)
            st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (st["v"].sqrt() / math.sqrt(bc2)).add_(eps)
            p.addcdiv_(st["m"] * step_size, denom, value=-1)

    def _adamw(self, lr, lrs):
        self._adam(lr, lrs, decoupled=True)

    def _rmsprop(self, lr, lrs):
        kw = self.kw
        alpha, eps, mom, wd = kw["alpha"], kw["eps"], kw.get("momentum", 0.0), kw.get("weight_decay", 0.0)
        for p, st in zip(self.params, self.state):
            g = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
            if not st:
                st["sq"] = torch.zeros_like(p)
                if mom > 0:
                    st["buf"] = torch.zeros_like(p)
            st["sq"].mul_(alpha).addcmul_(g, g, value=1 - alpha)
            avg = st["sq"].sqrt().add_(eps)
            if mom > 0:
                st["buf"].mul_(mom).addcdiv_(g, avg)
                p.addcmul_(st["buf"], lr, value=-1)
            else:
                p.addcdiv_(g * lr, avg, value=-1)


class StackedMLP:
    """M MLPs of one shape as stacked tensors: weights [M, in, out], biases [M, 1, out]."""

    def __init__(self, models: list, device):
        first = models[0]
        self.act, self.output_name = first.act, first.output_name
        self.output = OUTPUTS[first.output_name]
        self.weights, self.biases = [], []
        for i in range(len(first.layers)):
            w = torch.stack([m.layers[i].weight.detach().T for m in models]).contiguous()
            b = torch.stack([m.layers[i].bias.detach() for m in models]).unsqueeze(1)
            self.weights.append(w.to(device).requires_grad_(True))
            self.biases.append(b.to(device).requires_grad_(True))
        self.params = [p for pair in zip(self.weights, self.biases) for p in pair]
        self.n_layers = len(self.weights)

    def __call__(self, x, keep: list | None = None):
        """Logits [M, B, out] for inputs [M, B, in]; with `keep`, append each pre-activation."""
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.baddbmm(b, x, w)
            if keep is not None:
                keep.append(z)
            x = self.act(z) if i < self.n_layers - 1 else z
        return x

    def member_state(self, m: int) -> dict:
        """Member m's weights as an nn.Linear MLP state_dict (`layers.{i}.weight` is [out, in])."""
        state = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            state[f"layers.{i}.weight"] = w.detach()[m].T.contiguous().cpu()
            state[f"layers.{i}.bias"] = b.detach()[m, 0].clone().cpu()
        return state

    def __repr__(self) -> str:
        sizes = [self.weights[0].shape[1]] + [w.shape[2] for w in self.weights]
        return f"StackedMLP({len(self.weights[0])} x {'-'.join(map(str, sizes))})"


def _per_member(t):
    """[M, ...] -> [M, rest] for one reduction per member."""
    return t.reshape(t.shape[0], -1)


def _norms(t):
    return torch.linalg.vector_norm(_per_member(t), dim=1)


def _n_correct(z, labels, task: str):
    """Correct predictions per member, [M] (regression: zeros)."""
    if task == "multiclass":
        return _per_member(z.argmax(-1) == labels).sum(1)
    if task == "binary":
        return _per_member((z.squeeze(-1) > 0) == (labels.squeeze(-1) > 0.5)).sum(1)
    return z.new_zeros(z.shape[0])


class StackedReader:
    """The per-layer statistics of `train.LayerReader`, computed for every member at once."""

    def __init__(self, net: StackedMLP, cfg: Config):
        self.net = net
        act = cfg.model.activation
        out_name = net.output_name if net.output_name != "softmax" else "identity"
        self.derivs = [derivative_fn(act.name, act.kwargs)] * (net.n_layers - 1) + [
            derivative_fn(out_name, {})
        ]
        self.peaks = [peak_derivative(act.name, act.kwargs)] * (net.n_layers - 1)
        self.peaks.append({"identity": 1.0, "sigmoid": 0.25, "softmax": float("nan")}[net.output_name])

    def read(self, pre_activations) -> dict:
        """Per key, one [M] tensor per layer (input layer first), before the optimizer step."""
        stats = {k: [] for k in LAYER_KEYS}
        net = self.net
        self.before = [w.detach().clone() for w in net.weights]
        for i, (w, b, h) in enumerate(zip(net.weights, net.biases, pre_activations)):
            stats["grad_w"].append(_norms(w.grad))
            stats["grad_b"].append(_norms(b.grad))
            stats["grad_out"].append(_norms(h.grad))
            stats["weight_norm"].append(_norms(self.before[i]))
            h = h.detach()
            one = h[0].numel() > 1
            nan = h.new_full((h.shape[0],), float("nan"))
            last = i == net.n_layers - 1
            if last and net.output_name == "softmax":
                a = _per_member(net.output(h))
                stats["act_mean"].append(a.mean(1))
                stats["act_std"].append(a.std(1) if one else nan)
                stats["act_saturated"].append(
                    _per_member(net.output(h).max(-1).values > 0.99).to(h.dtype).mean(1)
                )
                stats["act_dead"].append(nan)
                stats["act_deriv"].append(nan)
                continue
            fn = net.output if last else net.act
            a = fn(h)
            deriv = self.derivs[i](h, a).abs()
            a = _per_member(a)
            sat = deriv < SATURATION * self.peaks[i]
            stats["act_mean"].append(a.mean(1))
            stats["act_std"].append(a.std(1) if one else nan)
            stats["act_saturated"].append(_per_member(sat).to(h.dtype).mean(1))
            stats["act_dead"].append(_per_member(sat.all(1)).to(h.dtype).mean(1))
            stats["act_deriv"].append(_per_member(deriv).mean(1))
        return stats

    def finish(self, stats: dict) -> list[dict]:
        """Add the update ratio of the step just taken; one dict of per-layer lists per member."""
        stats["update_ratio"] = [
            _norms(w.detach() - w0) / _norms(w0).clamp_min(1e-30)
            for w, w0 in zip(self.net.weights, self.before)
        ]
        # [keys, layers, M] in the parameters' dtype, as the plain loop converts them, then one sync
        dtype = self.net.weights[0].dtype
        table = torch.stack([torch.stack(stats[k]).to(dtype) for k in LAYER_KEYS]).permute(2, 0, 1).tolist()
        return [dict(zip(LAYER_KEYS, member)) for member in table]


def evaluate(net: StackedMLP, cfg: Config, x, y, labels, task: str, prefix: str) -> list[dict]:
    """Mean loss (and accuracy) of every member on its own whole set, without gradients."""
    n_members, n = x.shape[0], x.shape[1]
    if n == 0:
        return [{f"{prefix}loss": None, f"{prefix}acc": None}] * n_members
    with torch.no_grad():
        z = net(x)
        loss = _per_member(per_example(cfg.loss.name, cfg.loss.kwargs, z, net.output, y)).mean(1)
        correct = _n_correct(z, labels, task)
    loss, correct = loss.tolist(), correct.tolist()
    return [
        {f"{prefix}loss": loss[m], f"{prefix}acc": correct[m] / n if task != "regression" else None}
        for m in range(n_members)
    ]


def train_stacked(cfgs: list[Config], logs: list | None = None):
    """Train configs of one `group_key` as one stacked model; `logs[m](row)` gets member m's rows.

    Returns (summaries, net, data dicts): one summary per member, the `StackedMLP` and each member's
    data as `train.prepare` gives it. A member whose loss turns non-finite stops recording at that
    step (status `diverged`); the others go on. Ctrl-C marks every running member `interrupted`.
    """
    n_members = len(cfgs)
    cfg = cfgs[0]
    keys = {group_key(c) for c in cfgs}
    if len(keys) != 1:
        raise ValueError("train_stacked needs configs that differ only in seed, lr, init and target_loss")
    logs = logs or [None] * n_members
    device = device_of(cfg)
    torch.manual_seed(cfg.seed)
    ds = [prepare(c) for c in cfgs]
    if len({tuple(d["x"].shape) for d in ds}) != 1 or len({tuple(d["x_val"].shape) for d in ds}) != 1:
        raise ValueError("members' data sets differ in size; they cannot be stacked")
    task = ds[0]["dataset"].task

    def stack(key):
        return torch.stack([d[key] for d in ds])

    x, y, labels = stack("x"), stack("y"), stack("labels")
    n_train = x.shape[1]
    batch_size, per_epoch, n_steps = plan(cfg, n_train)
    models = [build_model(c, torch.Generator().manual_seed(c.seed + 1)) for c in cfgs]
    net = StackedMLP(models, device)
    base_lrs = [c.optim.kwargs["lr"] for c in cfgs]
    optimizer = StackedOptimizer(cfg.optim.name, net.params, cfg.optim.kwargs)
    schedule = schedules[cfg.optim.schedule.name].fn
    shuffles = [torch.Generator().manual_seed(c.seed + 2) for c in cfgs]
    reader = StackedReader(net, cfg)
    log_every, eval_every = cfg.train.log_every, cfg.train.eval_every or cfg.train.log_every
    members = torch.arange(n_members, device=device).unsqueeze(1)
    loss_sum, n_seen = [0.0] * n_members, 0
    status, diverged_step = ["finished"] * n_members, [None] * n_members
    steps_to_target, seconds_to_target = [None] * n_members, [None] * n_members
    first, last = [{} for _ in cfgs], [{} for _ in cfgs]
    running = list(range(n_members))
    start = time.perf_counter()
    step = 0
    try:
        for step in range(n_steps):
            if step % per_epoch == 0:
                order = torch.stack([torch.randperm(n_train, generator=g) for g in shuffles]).to(device)
                # one gather per epoch: every batch of the epoch is then a slice (a view)
                x_epoch, y_epoch, labels_epoch = x[members, order], y[members, order], labels[members, order]
            batch = slice((step % per_epoch) * batch_size, (step % per_epoch + 1) * batch_size)
            xb, yb = x_epoch[:, batch], y_epoch[:, batch]
            record = step % log_every == 0 or step == n_steps - 1

            keep = [] if record else None
            z = net(xb, keep=keep)
            member_loss = _per_member(per_example(cfg.loss.name, cfg.loss.kwargs, z, net.output, yb)).mean(1)
            if record:
                for h in keep:
                    h.retain_grad()
            for p in net.params:
                p.grad = None
            member_loss.sum().backward()  # member m's gradient is that of its own mean loss
            values = member_loss.tolist()
            for m in list(running):
                if not math.isfinite(values[m]):
                    status[m], diverged_step[m] = "diverged", step
                    row = {"step": step, "epoch": step / per_epoch, "loss": values[m]}
                    logs[m] and logs[m]({**row, "time": time.perf_counter() - start, "diverged": True})
                    running.remove(m)
            if not running:
                break
            n_batch = xb.shape[1]
            if record and task != "regression":  # accuracy of this batch only, as train.py
                correct_batch = _n_correct(z.detach(), labels_epoch[:, batch], task)
            for m in running:
                loss_sum[m] += values[m] * n_batch
            n_seen += n_batch

            if record:
                reading = reader.read(keep)

            factor = schedule(step, n_steps, **cfg.optim.schedule.kwargs)
            lrs = [lr * factor for lr in base_lrs]
            optimizer.step(lrs)

            if record:
                elapsed = time.perf_counter() - start
                correct = correct_batch.tolist() if task != "regression" else None
                layer_rows = reader.finish(reading)
                if step % eval_every == 0 or step == n_steps - 1:
                    val = evaluate(
                        net, cfg, stack("x_val"), stack("y_val"), stack("labels_val"), task, "val_"
                    )
                else:
                    val = [{}] * n_members
                for m in list(running):
                    row = {
                        "step": step,
                        "epoch": step / per_epoch,
                        "loss": loss_sum[m] / n_seen,
                        "acc": correct[m] / n_batch if task != "regression" else None,
                        "lr": lrs[m],
                        "time": elapsed,
                        **val[m],
                        **layer_rows[m],
                    }
                    norms = row["grad_w"] + row["weight_norm"]
                    if not all(math.isfinite(v) for v in norms):
                        status[m], diverged_step[m] = "diverged", step
                        row["diverged"] = True
                        running.remove(m)
                    logs[m] and logs[m](row)
                    first[m], last[m] = first[m] or row, row
                    target = cfgs[m].train.target_loss
                    if steps_to_target[m] is None and target is not None and row["loss"] <= target:
                        steps_to_target[m], seconds_to_target[m] = step, elapsed
                loss_sum, n_seen = [0.0] * n_members, 0
                if not running:
                    break
    except KeyboardInterrupt:
        for m in running:
            status[m] = "interrupted"
    wall = time.perf_counter() - start
    finals = [{} for _ in cfgs]
    if any(s != "diverged" for s in status):
        train_eval = evaluate(net, cfg, x, y, labels, task, "final_train_")
        val_eval = evaluate(net, cfg, stack("x_val"), stack("y_val"), stack("labels_val"), task, "final_val_")
        finals = [{**a, **b} for a, b in zip(train_eval, val_eval)]
    n_params = sum(p[0].numel() for p in net.params)
    summaries = []
    for m, c in enumerate(cfgs):
        summaries.append(
            {
                "status": status[m],
                "steps": n_steps,
                "steps_done": (diverged_step[m] if diverged_step[m] is not None else step + 1)
                if n_steps
                else 0,
                "epochs": n_steps / per_epoch,
                "diverged_step": diverged_step[m],
                **(finals[m] if status[m] != "diverged" else {}),
                "target_loss": c.train.target_loss,
                "steps_to_target": steps_to_target[m],
                "seconds_to_target": seconds_to_target[m],
                "grad_ratio_first_last": hidden_ratio(first[m]),
                "grad_ratio_first_last_end": hidden_ratio(last[m]),
                "wall_time": wall,
                "n_params": n_params,
                "task": task,
                "stacked": n_members,
            }
        )
    return summaries, net, ds


def run_stacked(cfgs: list[Config], root: str) -> list[tuple[dict, str]]:
    """Train a stack and write each member's run folder exactly as `runs.execute` writes it.

    Returns (summary, folder) per member. A KeyboardInterrupt is raised again after every folder
    records its member as interrupted.
    """
    from ..runs.store import RunWriter, run_dir, versions
    from .train import predict_view

    folders = [run_dir(root, c) for c in cfgs]
    writers = [RunWriter(f, c) for f, c in zip(folders, cfgs)]
    try:
        summaries, net, ds = train_stacked(cfgs, logs=[w.log for w in writers])
        device = str(net.params[0].device)
        for m, (c, w, folder, summary) in enumerate(zip(cfgs, writers, folders, summaries)):
            summary.update(
                seed=c.seed, name=c.name, run_id=os.path.basename(folder), device=device, versions=versions()
            )
            model = None
            view = None
            if summary["status"] != "diverged":
                model = build_model(c, torch.Generator().manual_seed(0))
                model.load_state_dict(net.member_state(m))
                view = predict_view(model, ds[m])
            w.finish(summary, model, view)
    finally:
        for w in writers:
            w.close()
    if any(s["status"] == "interrupted" for s in summaries):
        raise KeyboardInterrupt
    return list(zip(summaries, folders))
