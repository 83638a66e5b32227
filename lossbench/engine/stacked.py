"""The stacked engine: many runs of one shape trained as one model, each with its own seed and rate.

A tiny MLP step costs far less arithmetic than framework overhead, so training M members one after
another wastes the machine. Here member m's layer i is slice m of a weight tensor [M, in, out] and
one `baddbmm` computes every member's layer at once. Nothing mixes across members: the loss that is
back-propagated is the sum of the members' mean losses, so member m's gradient is exactly the one
its own run would get, and the registered torch.optim optimizer, elementwise, steps every member.

It is the default engine of every run, alone (a stack of one) or in a sweep, because a member's
numbers do not depend on its stack-mates, to the bit: every operation either works member by member
the same way at any stack size (`affine`, the per-member reductions of `recording`) or element by
element (`StackedOptimizer`, each member at its own rate). `tests/test_reproducible.py` checks it.

Every member records what the plain lesson loop `lossbench.engine.train.train` records for its
config, through the same `recording` code, equal to rounding (`tests/test_stacked_generated.py`
shows it for every registered component): the same data (`data.make` and `data.split` with its
seed), the same init (`build_model` with `Generator(seed + 1)`), the same data order
(`Generator(seed + 2)`, one `randperm` per epoch), the same rows on the same steps. Not to the bit:
`F.linear` and `baddbmm` take different BLAS paths, and the loop trains on the loss's fused mean;
on a chaotic config the last-bit differences grow into different runs (docs/runs.md). `time` in a
row (and `wall_time` and each target's `seconds_to` in the summary) is the wall time of the whole
stack, whose size the summary's `stack_size` gives.
"""

from __future__ import annotations

import functools
import json

import torch

from ..components.activations import OUTPUTS
from ..components.optim import optimizers, schedules
from ..config.schema import Config
from .model import MLP, build_model, device_of
from .recording import LayerReader, Recorder, linear_fit, member_sets
from .train import prepare, progress_bar


def group_key(cfg: Config) -> str:
    """Members with the same key can be stacked: same data set, shapes, loss, optimizer, steps."""
    d = cfg.to_dict()
    d.pop("seed")
    d["optim"] = {k: v for k, v in d["optim"].items() if k != "lr"}
    d["model"] = {k: v for k, v in d["model"].items() if k not in ("init", "bias_init")}
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("target_loss", "target")}
    return json.dumps(d, sort_keys=True, default=str)


def can_stack(cfgs: list[Config]) -> bool:
    """Whether the stacked engine trains these configs: one `group_key`, the default engine, and an
    optimizer that moves every member apart (`steps_members_apart`). Depends on the members'
    shared settings only, so a config can be stacked alone exactly when it can be stacked at all.

    Asked by the sweep's worker, not its planner: the check builds torch.optim optimizers, whose
    first construction in a process imports torch._dynamo (about 0.7 s).
    """
    if len({group_key(c) for c in cfgs}) != 1 or cfgs[0].train.engine != "stacked":
        return False
    return steps_members_apart(cfgs[0].optim.name, _settings(cfgs[0]), cfgs[0].dtype)


def _settings(cfg: Config) -> str:
    return json.dumps({k: v for k, v in cfg.optim.kwargs.items() if k != "lr"}, sort_keys=True)


def lr_spans(lrs: list[float]) -> list[tuple[int, int]]:
    """[start, stop) of each run of neighbouring members that share a learning rate."""
    starts = [m for m in range(len(lrs)) if m == 0 or lrs[m] != lrs[m - 1]]
    return list(zip(starts, starts[1:] + [len(lrs)]))


class StackedOptimizer:
    """The registered torch.optim optimizer on stacked tensors, each member at its own learning rate.

    Neighbouring members that share a rate form one span; each span's slice of every stacked tensor
    (a view) is one param group, stepped at the span's rate. torch.optim's update is elementwise and
    an element's arithmetic does not depend on where it sits in a tensor (`steps_members_apart`
    checks both), so a member moves exactly as its own torch.optim moves it alone, whatever its
    stack-mates. A stack of seeds is one span: the stacked tensors themselves, nothing sliced.
    """

    def __init__(self, name: str, params: list, kwargs: dict, lrs: list[float]):
        self.params, self.spans = params, lr_spans(lrs)
        if len(self.spans) == 1:
            groups = [{"params": params, "lr": lrs[0]}]
        else:
            groups = [{"params": [p.detach()[a:b] for p in params], "lr": lrs[a]} for a, b in self.spans]
        self.optimizer = optimizers[name].fn(groups, **kwargs)
        # torch.optim wraps `step` in a profiler label and hook calls, measured at about 60 us a
        # step: a third of a small stack's update. No hooks are set here, so the stack calls the
        # method underneath, the same update (bench/bench_sweep.py measures the engine).
        step = type(self.optimizer).step
        self._update = getattr(step, "__wrapped__", step)

    @torch.no_grad()
    def step(self, lrs: list[float]) -> None:
        """One step, member m at rate lrs[m] (equal within each span, as a shared schedule keeps them)."""
        for (a, b), group in zip(self.spans, self.optimizer.param_groups):
            group["lr"] = lrs[a]
            if len(self.spans) > 1:  # each slice's gradient: the same slice of the stack's
                for view, p in zip(group["params"], self.params):
                    view.grad = p.grad[a:b]
        self._update(self.optimizer)


@functools.cache
def steps_members_apart(name: str, settings: str, dtype: str) -> bool:
    """Whether `StackedOptimizer` moves each member bit for bit as its own torch.optim would.

    Checked by doing it: five steps of random gradients, with a decaying schedule, for members in
    spans of rates (two, one, two) against one torch.optim optimizer per member. An optimizer that
    mixes elements of a tensor or cannot be built this way fails, and its runs take the plain loop.
    `settings`: the optimizer's keywords but `lr`, as JSON.
    """
    kwargs = json.loads(settings)
    lrs = [0.1, 0.1, 0.03, 0.2, 0.2]
    g = torch.Generator().manual_seed(0)
    dt = torch.float64 if dtype == "float64" else torch.float32
    stacked = torch.randn(len(lrs), 5, 7, generator=g, dtype=dt, requires_grad=True)
    singles = [torch.nn.Parameter(stacked[m].detach().clone()) for m in range(len(lrs))]
    try:
        opt = StackedOptimizer(name, [stacked], kwargs, lrs)
        refs = [optimizers[name].fn([p], **{**kwargs, "lr": lr}) for p, lr in zip(singles, lrs)]
        for step in range(5):
            grad = torch.randn(stacked.shape, generator=g, dtype=dt)
            stacked.grad = grad.clone()
            opt.step([lr * 0.9**step for lr in lrs])
            for m, (p, ref) in enumerate(zip(singles, refs)):
                p.grad = grad[m].clone()
                for group in ref.param_groups:
                    group["lr"] = lrs[m] * 0.9**step
                ref.step()
    except Exception:  # an optimizer that needs a closure, or refuses a stacked tensor
        return False
    return all(torch.equal(stacked[m], p) for m, p in enumerate(singles))


def affine(b: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """b + x @ w for each member: [M, 1, out] + [M, B, in] @ [M, in, out], member by member alike.

    `baddbmm` computes every member of a batch the same way, whatever the batch's size, except a
    batch of one where `in` or `out` is 1 (a matrix times a vector, an outer product): BLAS takes
    another path there and rounds differently. Such a stack of one is computed as a batch of two,
    itself twice as views (stride 0, nothing copied), of which the first is kept; its gradients are
    the first copy's plus the second's zeros, exact. Measured on 1126 shapes (in, out, batch up to
    784, 256, 1000; float32 and float64, forward and backward): `tests/test_one_computation.py`.
    """
    if x.shape[0] == 1 and 1 in w.shape[1:]:
        return torch.baddbmm(b.expand(2, -1, -1), x.expand(2, -1, -1), w.expand(2, -1, -1))[:1]
    return torch.baddbmm(b, x, w)


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
            z = affine(b, x, w)
            if keep is not None:
                keep.append(z)
            x = self.act(z) if i < self.n_layers - 1 else z
        return x

    def state(self) -> list[torch.Tensor]:
        """Every member's parameters in a plain MLP's state_dict order and shapes, members first."""
        return [t for w, b in zip(self.weights, self.biases) for t in (w.transpose(1, 2), b[:, 0])]

    def member_model(self, m: int, cfg: Config) -> MLP:
        """Member m (of config `cfg`) as the nn.Linear MLP its plain run trains, on the CPU."""
        state = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            state[f"layers.{i}.weight"] = w.detach()[m].T.contiguous().cpu()
            state[f"layers.{i}.bias"] = b.detach()[m, 0].clone().cpu()
        model = build_model(cfg, torch.Generator().manual_seed(0))
        model.load_state_dict(state)
        return model

    def __repr__(self) -> str:
        sizes = [self.weights[0].shape[1]] + [w.shape[2] for w in self.weights]
        return f"StackedMLP({len(self.weights[0])} x {'-'.join(map(str, sizes))})"


def train_stacked(
    cfgs: list[Config], logs: list | None = None, progress: bool = False
) -> tuple[list[dict], StackedMLP, list[dict]]:
    """Train configs of one `group_key` as one stacked model; `logs[m](row)` gets member m's rows.

    Returns (summaries, net, data dicts): one summary per member, the `StackedMLP` and each member's
    data as `train.prepare` gives it. A member whose loss turns non-finite stops recording at that
    step (status `diverged`); the others go on. Ctrl-C marks every running member `interrupted`.
    """
    n_members = len(cfgs)
    cfg = cfgs[0]
    if not can_stack(cfgs):
        raise ValueError(
            "train_stacked needs configs that differ only in seed, lr, init and targets, on the "
            "stacked engine, with an optimizer that steps each element apart; run them plainly"
        )
    device = device_of(cfg)
    torch.manual_seed(cfg.seed)
    ds = [prepare(c) for c in cfgs]
    if len({tuple(d["x"].shape) for d in ds}) != 1 or len({tuple(d["x_val"].shape) for d in ds}) != 1:
        raise ValueError("members' data sets differ in size; they cannot be stacked")
    sets = member_sets(ds)
    x, y, labels = sets["train"]
    n_train = x.shape[1]
    batch_size, per_epoch, n_steps = cfg.plan(n_train)
    net = StackedMLP([build_model(c, torch.Generator().manual_seed(c.seed + 1)) for c in cfgs], device)
    base_lrs = [c.optim.kwargs["lr"] for c in cfgs]
    optimizer = StackedOptimizer(cfg.optim.name, net.params, cfg.optim.kwargs, base_lrs)
    schedule = schedules[cfg.optim.schedule.name].fn
    shuffles = [torch.Generator().manual_seed(c.seed + 2) for c in cfgs]
    reader = LayerReader(net.weights, net.biases, cfg, n_members)
    book = Recorder(cfgs, ds[0]["dataset"].task, n_steps, per_epoch, logs or [None] * n_members, sets)
    members = torch.arange(n_members, device=device).unsqueeze(1)
    bar = progress_bar(n_steps, progress, cfg.name)
    step = 0
    try:
        for step in range(n_steps):
            if step % per_epoch == 0:
                order = torch.stack([torch.randperm(n_train, generator=g) for g in shuffles]).to(device)
                # one gather per epoch: every batch of the epoch is then a slice (a view)
                x_epoch, y_epoch, labels_epoch = x[members, order], y[members, order], labels[members, order]
            batch = slice((step % per_epoch) * batch_size, (step % per_epoch + 1) * batch_size)
            xb, yb = x_epoch[:, batch], y_epoch[:, batch]
            record = book.records(step)
            book.keep_weights(step, net.state)

            keep: list[
                torch.Tensor
            ] = []  # the pre-activations, kept on recorded steps to read their gradients
            z = net(xb, keep=keep if record else None)
            for h in keep:
                h.retain_grad()
            member_loss = book.losses(z, yb)
            for p in net.params:
                p.grad = None
            member_loss.sum().backward()  # member m's gradient is that of its own mean loss
            if not book.add_losses(step, member_loss.tolist(), xb.shape[1]):
                break

            if record:
                reading = reader.read(keep)
                batch_metrics = book.predictions(z.detach(), labels_epoch[:, batch])

            factor = schedule(step, n_steps, **cfg.optim.schedule.kwargs)
            lrs = [lr * factor for lr in base_lrs]
            optimizer.step(lrs)

            if record:
                val = book.evaluate(net, "val", "val_") if book.evaluates(step) else None
                if not book.record(step, lrs, batch_metrics, val, reader.finish(reading)):
                    break
                bar.update(step + 1 - bar.n)
    except KeyboardInterrupt:
        book.interrupt()
    book.keep_weights(step + 1, net.state, last=True)
    for m, d in enumerate(ds):
        d["snapshots"] = book.snapshots(m)
    fits = None
    if cfg.model.depth == 0:
        fits = [linear_fit(net.weights[0][m].T, net.biases[0][m, 0]) for m in range(n_members)]
    bar.close()
    summaries = book.summaries(step, net, sum(p[0].numel() for p in net.params), fits)
    for summary in summaries:
        summary["engine"] = "stacked"
    return summaries, net, ds
