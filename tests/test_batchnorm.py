"""BatchNorm (Algorithm 1 and 2) against torch.nn.BatchNorm1d, autograd and gradcheck."""

from __future__ import annotations

import pytest
import torch

from bnnames.model import BatchNorm


def _pair(features: int, momentum: float = 0.1, eps: float = 1e-5, dtype=torch.float32):
    ours = BatchNorm(features, momentum=momentum, eps=eps).to(dtype)
    ref = torch.nn.BatchNorm1d(features, momentum=momentum, eps=eps).to(dtype)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a non-trivial gain and bias on both
        w, b = torch.randn(features, generator=g, dtype=dtype), torch.randn(features, generator=g, dtype=dtype)
        ours.weight.copy_(w), ref.weight.copy_(w)
        ours.bias.copy_(b), ref.bias.copy_(b)
    return ours, ref


def test_train_mode_forward_backward_and_running_stats_match_torch():
    ours, ref = _pair(7, momentum=0.3)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):  # several steps, so the running estimates accumulate
        x = (torch.randn(16, 7, generator=g) * 3 + 2).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        upstream = torch.randn(16, 7, generator=g)
        y, y_ref = ours(x), ref(x_ref)
        torch.testing.assert_close(y, y_ref)
        (y * upstream).sum().backward()
        (y_ref * upstream).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
        ours.weight.grad = ours.bias.grad = ref.weight.grad = ref.bias.grad = None
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    assert ours.num_batches_tracked.item() == ref.num_batches_tracked.item() == 5


def test_eval_mode_matches_torch_and_uses_running_stats():
    ours, ref = _pair(5, momentum=0.5)
    g = torch.Generator().manual_seed(2)
    ours(torch.randn(8, 5, generator=g)), ref(torch.randn(8, 5, generator=torch.Generator().manual_seed(2)))
    ours.eval(), ref.eval()
    x = torch.randn(3, 5, generator=g)
    torch.testing.assert_close(ours(x), ref(x))
    expected = ours.weight * (x - ours.running_mean) / torch.sqrt(ours.running_var + ours.eps) + ours.bias
    torch.testing.assert_close(ours(x), expected)
    torch.testing.assert_close(ours(x[:1]), ours(x)[:1])  # eval output of a row ignores the batch


def test_three_dimensional_input_normalises_over_batch_and_time():
    ours, ref = _pair(4, momentum=0.2)
    x = torch.randn(6, 5, 4, generator=torch.Generator().manual_seed(3))  # (N, T, C), features last
    y = ours(x)
    y_ref = ref(x.transpose(1, 2)).transpose(1, 2)  # torch wants (N, C, L)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(ours.running_var, ref.running_var)


def test_batch_statistics_are_the_direct_mean_and_biased_variance():
    bn = BatchNorm(3)
    x = torch.tensor([[1.0, 2.0, -1.0], [3.0, 6.0, 1.0], [5.0, 1.0, 0.0]])
    mean, var = bn.batch_stats(x)
    torch.testing.assert_close(mean, x.sum(0) / 3)
    torch.testing.assert_close(var, ((x - x.sum(0) / 3) ** 2).sum(0) / 3)


@pytest.mark.parametrize("style", ["paper", "lecture"])
def test_gradcheck_float64(style):
    bn = BatchNorm(4, style=style).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -0.5, 2.0, 0.7], dtype=torch.float64))
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4), requires_grad=True)
    w = bn.weight.detach().clone().requires_grad_()
    b = bn.bias.detach().clone().requires_grad_()

    def run(x, w, b):  # gradients with respect to the input, the gain and the bias at once
        return torch.func.functional_call(bn, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(run, (x, w, b))


def test_lecture_style_is_the_notebooks_arithmetic():
    bn = BatchNorm(3, momentum=0.001, style="lecture")
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(5))
    y = bn(x)
    expected = bn.weight * (x - x.mean(0, keepdim=True)) / x.std(0, keepdim=True) + bn.bias
    assert torch.equal(y, expected)
    torch.testing.assert_close(bn.running_std, 0.999 * torch.ones(3) + 0.001 * x.std(0))
    assert not hasattr(bn, "running_var")


def test_calibrated_statistics_replace_running_ones_in_eval():
    bn = BatchNorm(2).eval()
    bn.set_calibration(torch.tensor([1.0, -1.0]), torch.tensor([4.0, 9.0]))
    x = torch.tensor([[3.0, 2.0]])
    torch.testing.assert_close(bn(x), x / torch.sqrt(torch.tensor(1 + 1e-5)))  # running stats: 0 and 1
    bn.use_calibrated = True
    torch.testing.assert_close(bn(x), (x - torch.tensor([1.0, -1.0])) / torch.sqrt(torch.tensor([4.0, 9.0]) + 1e-5))
