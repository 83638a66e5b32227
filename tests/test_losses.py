"""Every loss against PyTorch's built-in or a hand-computed value, and its task rules."""

import pytest
import torch
import torch.nn.functional as F

from lossbench.components.losses import loss_target, losses, mean_loss, per_example
from lossbench.config.validate import build
from lossbench.errors import UserError

torch.manual_seed(0)
Z = torch.randn(7, 3, dtype=torch.float64)
Y = torch.randn(7, 3, dtype=torch.float64)


def test_mse_by_hand_and_half_convention():
    p, t = torch.tensor([[1.0], [0.0], [2.5]]), torch.tensor([[0.0], [2.0], [2.5]])  # r = 1, -2, 0
    assert losses["mse"].fn(p, t).squeeze().tolist() == [1.0, 4.0, 0.0]
    assert losses["mse"].fn(p, t, half=True).squeeze().tolist() == [0.5, 2.0, 0.0]  # Nielsen's C
    assert torch.allclose(losses["mse"].fn(Z, Y), (Z - Y) ** 2)


def test_mae_by_hand():
    p, t = torch.tensor([[1.0], [0.0], [2.5]]), torch.tensor([[0.0], [2.0], [2.5]])
    assert losses["mae"].fn(p, t).squeeze().tolist() == [1.0, 2.0, 0.0]
    assert torch.allclose(losses["mae"].fn(Z, Y), (Z - Y).abs())


@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_huber_matches_torch_and_formula(delta):
    assert torch.allclose(losses["huber"].fn(Z, Y, delta=delta).mean(), F.huber_loss(Z, Y, delta=delta))
    r = torch.tensor([0.5, 3.0], dtype=torch.float64)  # hand: 0.5 * 0.25 and 1 * (3 - 0.5)
    assert torch.allclose(
        losses["huber"].fn(r, torch.zeros(2, dtype=torch.float64), delta=1.0),
        torch.tensor([0.125, 2.5], dtype=torch.float64),
    )


def test_bce_matches_torch_and_stays_finite_where_sigmoid_rounds():
    t = (torch.rand(7, 1, dtype=torch.float64) > 0.5).double()
    z = torch.randn(7, 1, dtype=torch.float64)
    assert torch.allclose(losses["bce"].fn(z, t).mean(), F.binary_cross_entropy_with_logits(z, t))
    # float32: sigmoid(20) rounds to exactly 1.0, yet the logit form gives loss 20 and gradient 1
    z = torch.tensor([[20.0]], requires_grad=True)
    assert torch.sigmoid(z).item() == 1.0
    loss = losses["bce"].fn(z, torch.zeros(1, 1)).sum()
    loss.backward()
    assert loss.item() == pytest.approx(20.0, rel=1e-6)
    assert z.grad.item() == pytest.approx(1.0, rel=1e-6)


def test_cross_entropy_matches_torch_with_leading_dims():
    z = torch.randn(2, 5, 4, dtype=torch.float64)
    t = torch.randint(0, 4, (2, 5))
    ours = losses["cross_entropy"].fn(z, t)
    assert ours.shape == (2, 5)
    assert torch.allclose(ours.mean(), F.cross_entropy(z.reshape(-1, 4), t.reshape(-1)))


def test_binary_hinge_by_hand():
    z = torch.tensor([[2.0], [0.5], [-0.3], [-2.0]])
    t = torch.tensor([[1.0], [1.0], [0.0], [1.0]])  # y = +1, +1, -1, +1
    # max(0, 1 - y z): 0, 0.5, 0.7, 3
    assert torch.allclose(losses["hinge"].fn(z, t).squeeze(), torch.tensor([0.0, 0.5, 0.7, 3.0]))


def test_multiclass_hinge_matches_multimargin():
    z = torch.randn(6, 4, dtype=torch.float64)
    t = torch.randint(0, 4, (6,))
    assert torch.allclose(losses["hinge"].fn(z, t).mean(), F.multi_margin_loss(z, t))


@pytest.mark.parametrize("name", losses.names())
def test_every_loss_gives_finite_gradients_on_each_task_it_accepts(name):
    for task in losses[name].meta["tasks"]:
        if task == "multiclass":
            z, y = torch.randn(5, 3, requires_grad=True), torch.randint(0, 3, (5,))
            y = loss_target(name, y, task, 3)
        else:
            z, y = torch.randn(5, 1, requires_grad=True), (torch.rand(5, 1) > 0.5).float()
        out = torch.sigmoid if task == "binary" else (lambda v: v)
        loss = per_example(name, losses[name].defaults(), z, out, y).mean()
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


@pytest.mark.parametrize("name", losses.names())
def test_every_loss_refuses_a_task_it_does_not_fit(name):
    data = {"regression": {"name": "sine"}, "binary": {"name": "moons"}, "multiclass": {"name": "blobs"}}
    for task, spec in data.items():
        raw = {"data": spec, "loss": {"name": name}}
        if task in losses[name].meta["tasks"]:
            assert build(raw).loss.name == name
        else:
            with pytest.raises(UserError, match=f"does not fit the {task} task"):
                build(raw)


def test_bce_on_classes_is_nielsens_per_output_cross_entropy():
    """Sigmoid outputs against one-hot targets; with sum_outputs, summed over outputs as Nielsen's C."""
    z = torch.randn(8, 10, dtype=torch.float64)
    y = torch.randint(0, 10, (8,))
    t = loss_target("bce", y, "multiclass", 10, torch.float64)
    assert torch.equal(t, F.one_hot(y, 10).double())
    a = torch.sigmoid(z)
    nielsen = -(t * a.log() + (1 - t) * (1 - a).log()).sum(1).mean()
    assert torch.allclose(losses["bce"].fn(z, t, sum_outputs=True).mean(), nielsen)
    assert torch.allclose(losses["bce"].fn(z, t).mean(), F.binary_cross_entropy_with_logits(z, t))


def _task_inputs(name, task, dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    if task == "multiclass":
        z, y = torch.randn(6, 4, generator=g, dtype=dtype), torch.randint(0, 4, (6,), generator=g)
        return z, loss_target(name, y, task, 4, dtype)
    if task == "binary":
        return torch.randn(6, 1, generator=g, dtype=dtype), (torch.rand(6, 1, generator=g) > 0.5).to(dtype)
    return torch.randn(6, 1, generator=g, dtype=dtype), torch.randn(6, 1, generator=g, dtype=dtype)


@pytest.mark.parametrize("name", losses.names())
def test_fused_mean_equals_the_mean_of_per_example_losses_in_value_and_gradient(name):
    """The training loop's mean (PyTorch's own reduction) is the per-example mean, for every setting."""
    entry = losses[name]
    settings = [entry.defaults()] + [{k: not v} for k, v in entry.defaults().items() if isinstance(v, bool)]
    for task in entry.meta["tasks"]:
        for kwargs in settings:
            out = torch.sigmoid if task == "binary" else (lambda v: v)
            z, y = _task_inputs(name, task)
            z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
            reference = per_example(name, kwargs, z1, out, y).mean()
            fused = mean_loss(name, kwargs, out)(z2, y)
            reference.backward(), fused.backward()
            assert fused.shape == ()
            assert torch.allclose(fused, reference, rtol=1e-12, atol=0)
            assert torch.allclose(z2.grad, z1.grad, rtol=1e-12, atol=1e-15)


def test_a_loss_without_reduction_still_gets_its_mean(monkeypatch):
    """A user's loss need not take `reduction`: the loop then takes the mean of its per-example loss."""
    from lossbench.components.registry import Registry

    reg = Registry("loss")

    @reg.register(tasks=("regression",), on="output")
    def cubic(prediction, target, *, scale: float = 1.0):
        return scale * (prediction - target).abs() ** 3

    from lossbench.components import losses as module

    monkeypatch.setattr(module, "losses", reg)
    f = mean_loss("cubic", {"scale": 2.0}, lambda v: v)
    p, t = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])
    assert f(p, t).item() == pytest.approx((2 * 1 + 2 * 8) / 2)


@pytest.mark.parametrize("name", ["mse", "mae", "huber"])
def test_regression_losses_broadcast_a_parameter_grid_without_warnings(name, recwarn):
    """The loss gallery evaluates a grid of constant predictions [G, 1, 1] against targets [N, 1]."""
    grid, targets = torch.linspace(-2, 2, 9).reshape(-1, 1, 1), torch.tensor([[0.0], [1.0], [5.0]])
    r = grid - targets  # [9, 3, 1]
    expected = {"mse": r**2, "mae": r.abs(), "huber": torch.where(r.abs() <= 1, 0.5 * r**2, r.abs() - 0.5)}
    assert torch.allclose(losses[name].fn(grid, targets), expected[name])
    assert not [w for w in recwarn if "target size" in str(w.message)]
