"""The networks: embedding -> (merge -> Linear -> BatchNorm -> tanh [-> dropout]) x n_layers -> Linear.

"mlp" merges the whole context once, before the first hidden layer (makemore parts 2-3);
"wavenet" merges pairs of neighbours before every hidden layer, a tree (makemore part 5).
Layers are small hand-written modules in the makemore style, so every step of Batch
Normalization is visible; the one factory `build_model` turns a `ModelConfig` into a network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bnnames.config import ModelConfig
from bnnames.errors import ConfigError


class BatchNorm(nn.Module):
    """Batch Normalization over the last (feature) dimension.

    Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network Training by Reducing
    Internal Covariate Shift". Training mode is Algorithm 1 on each mini-batch B = {x_1..m}:

        mu_B = 1/m sum x_i                      (mini-batch mean)
        var_B = 1/m sum (x_i - mu_B)^2          (mini-batch variance)
        x_hat = (x - mu_B) / sqrt(var_B + eps)  (normalise)
        y = gain * x_hat + bias                 (scale and shift)

    and updates the running estimates used by eval mode (Algorithm 2's inference network):
    ``running = (1 - momentum) * running + momentum * batch statistic``, with the unbiased
    variance m/(m-1) var_B, exactly as ``torch.nn.BatchNorm1d``. Eval mode normalises with the
    running estimates, or with `calibrated` ones measured over the whole training split.

    ``style="lecture"`` is the makemore notebook's arithmetic instead: divide by the unbiased
    standard deviation with no eps, and keep a running *standard deviation*.

    Args:
        num_features: C, the size of the feature dimension. Default: required.
        momentum: weight of each new batch in the running estimates. Default: 0.001.
        eps: added to the variance for numerical stability (paper style). Default: 1e-5.
        style: "paper" or "lecture". Default: "paper".

    Shape:
        input (N, C) or (N, T, C): statistics are taken over every dimension but the last.
        output: same shape as the input.
    """

    per_position = True  # eval mode maps each position's vector alone (Folded shares rows)

    def __init__(self, num_features: int, momentum: float = 0.001, eps: float = 1e-5, style: str = "paper") -> None:
        super().__init__()
        self.momentum, self.eps, self.style = momentum, eps, style
        self.spread = "var" if style == "paper" else "std"  # which second-moment statistic
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma, the gain
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer(f"running_{self.spread}", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.use_calibrated = False  # eval mode: calibrated statistics instead of running ones

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean, spread = self.batch_stats(x)
            self._update_running(mean, spread, count=x.numel() // x.shape[-1])
        else:
            mean, spread = self.inference_stats()
        if self.style == "lecture":
            return self.weight * (x - mean) / spread + self.bias  # the notebook's order of ops
        x_hat = (x - mean) / torch.sqrt(spread + self.eps)
        return self.weight * x_hat + self.bias

    def batch_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mini-batch mean and spread (biased variance, or unbiased std for the lecture style)."""
        dims = tuple(range(x.dim() - 1))  # every dimension but the features
        if self.style == "lecture":
            return x.mean(dims), x.std(dims)
        return x.mean(dims), x.var(dims, unbiased=False)

    def inference_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        prefix = "calibrated" if self.use_calibrated else "running"
        return getattr(self, f"{prefix}_mean"), getattr(self, f"{prefix}_{self.spread}")

    def has_calibration(self) -> bool:
        return hasattr(self, "calibrated_mean")

    def set_calibration(self, mean: torch.Tensor, spread: torch.Tensor) -> None:
        """Store population statistics (unbiased variance, or std for the lecture style)."""
        self.register_buffer("calibrated_mean", mean.detach().to(self.running_mean).clone())
        self.register_buffer(f"calibrated_{self.spread}", spread.detach().to(self.running_mean).clone())

    def drop_calibration(self) -> bool:
        """Forget calibrated statistics (they describe weights that training then changed); True if any."""
        had = self.has_calibration()
        for name in ("calibrated_mean", f"calibrated_{self.spread}"):
            if hasattr(self, name):
                delattr(self, name)
        self.use_calibrated = False
        return had

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, spread: torch.Tensor, count: int) -> None:
        if self.style == "paper":
            spread = spread * (count / max(count - 1, 1))  # unbiased, as torch.nn.BatchNorm1d
        running_spread = getattr(self, f"running_{self.spread}")
        self.running_mean.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
        running_spread.mul_(1 - self.momentum).add_(spread, alpha=self.momentum)
        self.num_batches_tracked.add_(1)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, momentum={self.momentum}, eps={self.eps}, style={self.style}"


class LayerNorm(nn.Module):
    """Layer Normalization (Ba et al. 2016) over the last (feature) dimension of each example
    and position: y = gain * (x - mean) / sqrt(var + eps) + shift, statistics of x itself, so
    training and eval compute the same thing and there are no running statistics to keep.
    It does not fold into the Linear before it (its scale depends on the input)."""

    per_position = True  # each position's vector is normalised alone

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"


class Embedding(nn.Module):
    """A lookup table of character vectors: ids (B, T) -> (B, T, n_embd)."""

    per_position = True  # eval mode maps each position's vector alone (Folded shares rows)

    def __init__(self, num: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, dim))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.weight[idx]


class Flatten(nn.Module):
    """Concatenate the context's vectors: (B, T, C) -> (B, T * C)."""

    per_position = False  # a merge: Folded handles it by grouping rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1)


class FlattenConsecutive(nn.Module):
    """Concatenate each group of `n` neighbours: (B, T, C) -> (B, T // n, C * n).

    The hierarchical model's merge step; a time axis of length 1 is dropped, so the last
    level hands (B, C * n) to the output layer.
    """

    per_position = False  # a merge: Folded handles it by grouping rows

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, channels = x.shape
        x = x.reshape(batch, time // self.n, channels * self.n)
        return x.squeeze(1) if x.shape[1] == 1 else x

    def extra_repr(self) -> str:
        return str(self.n)


class Linear(nn.Module):
    """y = x @ W (+ b), with W stored (fan_in, fan_out) as in the lecture (same random draws)."""

    per_position = True  # eval mode maps each position's vector alone (Folded shares rows)

    def __init__(self, fan_in: int, fan_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fan_in, fan_out))
        self.bias = nn.Parameter(torch.empty(fan_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight
        return out if self.bias is None else out + self.bias


class Tanh(nn.Module):
    per_position = True  # eval mode maps each position's vector alone (Folded shares rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class Dropout(nn.Module):
    """Inverted dropout (Srivastava et al. 2014): in training, zero each value with probability p
    and scale the kept ones by 1 / (1 - p), so the next layer sees the same mean as in eval mode.

    The masks come from the run's one training generator, which only the training loop passes
    in: eval mode, calibration and diagnostics probes (no generator) see the identity and draw
    nothing. A training step draws, in this fixed order: its batch indices, then one uniform
    (B, ...) tensor per Dropout layer, from the input side to the output side (`draw_keep`).
    The fast step draws the same numbers in the same order, so resume stays exact.

    Sits after tanh, before the next Linear (see `build_model` and docs/regularisation.md).
    """

    per_position = True  # eval mode maps each position's vector alone (Folded shares rows)

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training or generator is None:
            return x
        keep = draw_keep(x.shape, self.p, generator).to(x.device)
        return x * dropout_scale(keep, self.p, x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def draw_keep(shape: tuple[int, ...] | torch.Size, p: float, generator: torch.Generator) -> torch.Tensor:
    """The one dropout draw: a bool mask, True (kept) with probability 1 - p, on the CPU."""
    return torch.rand(shape, generator=generator) >= p


def dropout_scale(keep: torch.Tensor, p: float, dtype: torch.dtype) -> torch.Tensor:
    """What a Dropout multiplies its input by: 1 / (1 - p) where kept, 0 where dropped."""
    return keep.to(dtype) / (1 - p)


class NamesModel(nn.Module):
    """A stack of layers with one contract: `model(contexts (B, block_size)) -> logits (B, vocab)`."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits of each context; `generator` (training only) draws the dropout masks."""
        x = idx
        for layer in self.layers:
            x = layer(x, generator) if isinstance(layer, Dropout) else layer(x)
        return x

    def decayed_parameters(self) -> list[nn.Parameter]:
        """What weight decay shrinks: the embedding table and every Linear's weight matrix.

        Not BatchNorm's gain and shift, nor biases: a BatchNorm makes the Linear before it
        scale-invariant, so decaying that weight only raises its effective learning rate, while
        decaying a gain would shrink the layer's output itself (docs/regularisation.md).
        """
        return [layer.weight for layer in self.layers if isinstance(layer, Embedding | Linear)]

    def batch_norms(self) -> list[BatchNorm]:
        return [layer for layer in self.layers if isinstance(layer, BatchNorm)]

    def choose_stats(self, requested: str | None = None) -> str:
        """Set what eval mode normalises with and return its name: `requested`, else calibrated
        statistics when the model has them, else running ones; "none" for a model without BatchNorm."""
        if not self.batch_norms():
            return "none"
        kind = requested or ("calibrated" if self.has_calibration() else "running")
        if kind == "calibrated" and not self.has_calibration():
            raise ConfigError(
                "this checkpoint has no calibrated statistics: run `bnnames calibrate` first, or use --stats running"
            )
        self.use_stats(kind)
        return kind

    def use_stats(self, kind: str) -> None:
        """Pick what eval mode normalises with: "running" or "calibrated" statistics."""
        for bn in self.batch_norms():
            bn.use_calibrated = kind == "calibrated"

    def has_calibration(self) -> bool:
        norms = self.batch_norms()
        return bool(norms) and all(bn.has_calibration() for bn in norms)


def build_model(config: ModelConfig, vocab_size: int) -> NamesModel:
    """The one factory: layers for `config`, parameters left uninitialised (see `initialise`).

    Every architecture is the same stack with a different merge step: "mlp" flattens the
    whole context before the first hidden layer, "wavenet" merges pairs before every one.
    """
    with_bn = config.uses_batch_norm
    layers: list[nn.Module] = [Embedding(vocab_size, config.n_embd)]
    width = config.n_embd
    for level in range(config.n_layers):
        if config.arch == "wavenet":  # merge pairs of neighbours before every layer: a tree
            layers.append(FlattenConsecutive(2))
            width *= 2
        elif level == 0:  # mlp: concatenate the whole context once
            layers.append(Flatten())
            width *= config.block_size
        layers.append(Linear(width, config.n_hidden, bias=config.norm == "none"))  # the norm's shift replaces it
        if with_bn:
            layers.append(BatchNorm(config.n_hidden, config.bn_momentum, config.bn_eps, config.bn_style))
        elif config.norm == "layer":
            layers.append(LayerNorm(config.n_hidden, config.bn_eps))
        layers.append(Tanh())
        if config.dropout > 0:  # after tanh: the next BatchNorm sees it only through the next Linear
            layers.append(Dropout(config.dropout))
        width = config.n_hidden
    layers.append(Linear(width, vocab_size, bias=not config.batch_norm_on_logits))
    if config.batch_norm_on_logits:
        layers.append(BatchNorm(vocab_size, config.bn_momentum, config.bn_eps, config.bn_style))
    return NamesModel(layers)


@torch.no_grad()
def initialise(model: NamesModel, config: ModelConfig, generator: torch.Generator) -> None:
    """Draw every parameter from `generator` in layer order, as the reference does.

    Embedding ~ N(0, 1); Linear layers feeding tanh (or a BatchNorm) ~ N(0, 1) * gain / sqrt(fan_in);
    the output layer ~ N(0, 1) * out_scale (divided by sqrt(fan_in) for out_init "kaiming") and
    a bias drawn then zeroed (the reference draws `randn * 0`, which keeps every later random
    number, the mini-batches included, in step with it). With a BatchNorm on the logits, the
    output Linear is initialised like the hidden ones and that BatchNorm's gain starts at out_scale.
    """
    linears = [layer for layer in model.layers if isinstance(layer, Linear)]
    norms = model.batch_norms()
    logits_norm = norms[-1] if norms and model.layers[-1] is norms[-1] else None
    for layer in model.layers:
        if isinstance(layer, Embedding):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
        elif isinstance(layer, Linear):
            is_output = layer is linears[-1] and logits_norm is None
            fan_in = layer.weight.shape[0]
            scale = _output_scale(config, fan_in) if is_output else config.gain / math.sqrt(fan_in)
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * scale)
            if layer.bias is not None:
                bias_scale = 0.0 if is_output else 0.01
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * bias_scale)
    if logits_norm is not None:
        logits_norm.weight.fill_(config.out_scale)  # the lecture's `layers[-1].gamma *= 0.1`


def _output_scale(config: ModelConfig, fan_in: int) -> float:
    return config.out_scale / math.sqrt(fan_in) if config.out_init == "kaiming" else config.out_scale


def create_model(config: ModelConfig, vocab_size: int, generator: torch.Generator) -> NamesModel:
    model = build_model(config, vocab_size)
    initialise(model, config, generator)
    return model
