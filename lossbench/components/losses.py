"""Losses: each one small function from a prediction and a target to a per-example loss.

A loss returns the loss of every example (and output unit) without reducing, so the batched sweep
engine can take one mean per stacked member. A loss may also take `reduction` ("none" or "mean",
PyTorch's convention): the training loop then asks for the mean directly, which PyTorch computes in
one fused op and one backward node instead of two (a measurable part of a small net's step). `on` says what
it is given: the model's `output` (after the output nonlinearity, e.g. a sigmoid) or its `logits`
(before it), and `output` the nonlinearity it assumes. Cross-entropy is always computed from logits:
in float32 sigmoid(z) rounds to 1.0 above z ~ 17 and a loss built on that rounded probability has
zero gradient where the logit form still gives 1.

To add a loss: write one function here with `@losses.register(...)`; keyword-only arguments are
the hyperparameters a config may set (`loss: {name: my_loss, alpha: 0.5}`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Gt, Interval

from .registry import Registry

losses = Registry("loss")

REGRESSION, BINARY, MULTICLASS = "regression", "binary", "multiclass"


def _broadcast(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both at their common shape: the regression losses broadcast, as a formula would (a grid of
    parameter values against the targets), where torch's losses warn that shapes differ."""
    if prediction.shape == target.shape:
        return prediction, target
    prediction, target = torch.broadcast_tensors(prediction, target)
    return prediction, target


@losses.register(tasks=(REGRESSION, BINARY, MULTICLASS), on="output")
def mse(
    prediction: torch.Tensor, target: torch.Tensor, reduction: str = "none", *, half: bool = False
) -> torch.Tensor:
    """Mean squared error (L2, quadratic): mean((y - y_hat)^2), or half of it with `half: true`.

    Formula: r^2 per output, r = y - y_hat; with `half`, r^2 / 2 (Nielsen's C = (y - a)^2 / 2;
    PyTorch's MSELoss has no 1/2). Gradient: 2 r (r with `half`), large for large errors, which is
    why MSE learns fast early and is pulled by outliers. Shapes: prediction and target [..., d].
    Reference: torch.nn.MSELoss.
    """
    r2 = F.mse_loss(*_broadcast(prediction, target), reduction=reduction)
    return 0.5 * r2 if half else r2


@losses.register(tasks=(REGRESSION, BINARY, MULTICLASS), on="output")
def mae(prediction: torch.Tensor, target: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """Mean absolute error (L1): mean(abs(y - y_hat)), in the target's own units.

    Gradient: sign(r), the same size near the minimum as far from it, so a fixed step makes the
    parameter jump around the minimum. Shapes: [..., d]. Reference: torch.nn.L1Loss.
    """
    return F.l1_loss(*_broadcast(prediction, target), reduction=reduction)


@losses.register(tasks=(REGRESSION, BINARY, MULTICLASS), on="output")
def huber(
    prediction: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "none",
    *,
    delta: Annotated[float, Gt(0)] = 1.0,
) -> torch.Tensor:
    """Huber: 0.5 r^2 where abs(r) <= delta, else delta (abs(r) - 0.5 delta).

    MSE near zero, MAE beyond delta: gradient r inside, delta * sign(r) outside. Shapes: [..., d].
    Reference: torch.nn.HuberLoss (SmoothL1Loss(beta) is Huber divided by beta).
    """
    return F.huber_loss(*_broadcast(prediction, target), reduction=reduction, delta=delta)


@losses.register(tasks=(BINARY, MULTICLASS), on="logits", output="sigmoid")
def bce(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "none", *, sum_outputs: bool = False
) -> torch.Tensor:
    """Binary cross-entropy (log loss) from logits: -[y log p + (1-y) log(1-p)], p = sigmoid(z).

    Gradient with respect to the logit: p - y, with no sigmoid'(z) factor, so a saturated wrong
    output still learns fast. Shapes: logits and target [..., 1], target in {0, 1}. On classes it
    is applied to every sigmoid output against the one-hot target (Nielsen's cross-entropy for a
    sigmoid output layer); `sum_outputs: true` sums over the outputs instead of averaging, as
    Nielsen's C = -(1/n) sum_x sum_j [...] does. Reference: torch.nn.BCEWithLogitsLoss.
    """
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)
    return loss * logits.shape[-1] if sum_outputs else loss


@losses.register(tasks=(MULTICLASS,), on="logits", output="softmax")
def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "none",
    *,
    label_smoothing: Annotated[float, Interval(ge=0, le=1)] = 0.0,
) -> torch.Tensor:
    """Categorical cross-entropy from logits: -log softmax(z)[y].

    Gradient with respect to the logits: softmax(z) - onehot(y). Shapes: logits [..., C], target
    [...] class indices. Reference: torch.nn.functional.cross_entropy.
    """
    flat = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        target.reshape(-1),
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    return flat.reshape(target.shape) if reduction == "none" else flat


@losses.register(tasks=(BINARY, MULTICLASS), on="logits", output="identity")
def hinge(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "none",
    *,
    margin: Annotated[float, Gt(0)] = 1.0,
) -> torch.Tensor:
    """Hinge (SVM) loss: max(0, margin - y z) with y in {-1, +1}; multi-class: Weston-Watkins sum.

    Class targets {0, 1} become {-1, +1}. Gradient: -y while y z < margin, exactly 0 beyond it, so
    points past the margin stop contributing. Multi-class (target [...] class indices, logits
    [..., C]) is sum over j != y of max(0, margin - z_y + z_j) / C, torch's MultiMarginLoss: the
    Weston-Watkins (1999) form, a term per wrong class (Crammer-Singer 2001 takes the max over j != y).
    """
    if logits.shape[-1] == 1 and target.dtype.is_floating_point:
        sign = 2.0 * target - 1.0
        loss = torch.clamp(margin - sign * logits, min=0.0)
        return loss if reduction == "none" else loss.mean()
    flat = F.multi_margin_loss(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), margin=margin, reduction=reduction
    )
    return flat.reshape(target.shape) if reduction == "none" else flat


def default_loss(task: str) -> str:
    """The loss a config of `task` gets when it names none."""
    return {REGRESSION: "mse", BINARY: "bce", MULTICLASS: "cross_entropy"}[task]


def default_output(loss_name: str, task: str) -> str:
    """The output nonlinearity a loss gets when the config says `output: auto`."""
    entry = losses[loss_name]
    if "output" in entry.meta:
        return entry.meta["output"]
    return {REGRESSION: "identity", BINARY: "sigmoid", MULTICLASS: "softmax"}[task]


def loss_target(
    loss_name: str, y: torch.Tensor, task: str, n_outputs: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The target in the form the loss wants: one-hot for an elementwise loss on classes."""
    entry = losses[loss_name]
    if task == MULTICLASS and (entry.meta["on"] == "output" or entry.meta.get("output") == "sigmoid"):
        return F.one_hot(y, n_outputs).to(dtype)
    return y


@functools.cache
def _takes_reduction(fn: Callable) -> bool:
    return "reduction" in inspect.signature(fn).parameters


def mean_loss(
    loss_name: str, kwargs: dict, output: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A function (logits z, prepared target y) -> the mean loss over every example and output.

    Through the loss's own `reduction="mean"` when it takes one (PyTorch fuses the mean), else the
    mean of `per_example`: the same number either way. The training loop builds it once per run.
    """
    fn = losses[loss_name].fn
    on_logits = losses[loss_name].meta["on"] == "logits"
    if not _takes_reduction(fn):
        return lambda z, y: fn(z if on_logits else output(z), y, **kwargs).mean()
    return lambda z, y: fn(z if on_logits else output(z), y, "mean", **kwargs)


def per_example(
    loss_name: str,
    kwargs: dict,
    z: torch.Tensor,
    output: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
) -> torch.Tensor:
    """The unreduced loss of `loss_name` for logits `z` and (prepared) targets `y`.

    `output` is the model's output nonlinearity; it is applied only for losses on the output.
    """
    entry = losses[loss_name]
    prediction = z if entry.meta["on"] == "logits" else output(z)
    return entry.fn(prediction, y, **kwargs)


# other names people use for these (offered by "did you mean", not accepted: one thing, one name)
losses.alias(
    l1="mae",
    l2="mse",
    quadratic="mse",
    squared_error="mse",
    mean_squared_error="mse",
    absolute_error="mae",
    mean_absolute_error="mae",
    smooth_l1="huber",
    log_loss="bce",
    logistic="bce",
    logloss="bce",
    binary_cross_entropy="bce",
    bce_with_logits="bce",
    crossentropy="cross_entropy",
    categorical_cross_entropy="cross_entropy",
    softmax_cross_entropy="cross_entropy",
    ce="cross_entropy",
    nll="cross_entropy",
    svm="hinge",
    multi_margin="hinge",
)
