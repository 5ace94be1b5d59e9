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


class Layer(nn.Module):
    """A layer that says what it is, so the code that walks a network asks it instead of testing
    its type: `inference.Folded`, `calibrate`, the fast step's plan and the diagnostics read these.

    Each kind overrides what differs from the defaults, which are the safe ones: a layer that
    does not say it maps each position alone is run layer by layer (never a wrong shape).
    """

    per_position = False  # eval mode maps each position's vector alone (Folded may share rows)
    eval_identity = False  # eval mode passes the input through unchanged (Folded drops it)
    running_statistics = False  # keeps batch statistics for eval mode (calibrate recomputes them)
    nonlinearity = False  # an activation whose outputs the diagnostics histogram
    draws_in_training = False  # forward(x, generator): the training generator draws in it
    decayed: tuple[str, ...] = ()  # names of the parameters weight decay shrinks

    def merge_size(self, positions: int) -> int | None:
        """How many neighbouring positions this layer concatenates into one (of `positions`), or None."""
        return None

    def fold_into(self, before: nn.Module) -> nn.Module | None:
        """This layer and the one `before` it as one eval-mode layer, or None if they do not fold."""
        return None

    def draw_(self, generator: torch.Generator, config: ModelConfig, is_output: bool) -> None:
        """Initialise the parameters from `generator` (`is_output`: the network's last layer with any)."""


class BatchNorm(Layer):
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

    per_position = True
    running_statistics = True

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

    @torch.no_grad()
    def fold_into(self, before: nn.Module) -> nn.Module | None:
        """Eval mode's BatchNorm (Algorithm 2, step 11) is a fixed affine map per feature,
        y = gain * (z - mean) / s + shift, with s = sqrt(var + eps) (paper) or the stored std
        (lecture). After a Linear z = x @ W + b it is one Linear layer:

            W' = W * (gain / s)        b' = (b - mean) * (gain / s) + shift

        computed in float64, so the folded layer differs from the pair only by float32 rounding.
        """
        if type(before) is not Linear:
            return None
        mean, spread = (t.double() for t in self.inference_stats())
        s = spread if self.style == "lecture" else torch.sqrt(spread + self.eps)
        scale = self.weight.double() / s  # (C,)
        bias = before.bias.double() if before.bias is not None else torch.zeros_like(mean)
        fused = Linear(*before.weight.shape, bias=True).to(before.weight)
        fused.weight.copy_(before.weight.double() * scale)
        fused.bias.copy_((bias - mean) * scale + self.bias.double())
        return fused

    def draw_(self, generator: torch.Generator, config: ModelConfig, is_output: bool) -> None:
        if is_output:  # on the logits: the gain starts at out_scale (the lecture's `layers[-1].gamma *= 0.1`)
            self.weight.fill_(config.out_scale)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, momentum={self.momentum}, eps={self.eps}, style={self.style}"


class LayerNorm(Layer):
    """Layer Normalization (Ba et al. 2016) over the last (feature) dimension of each example
    and position: y = gain * (x - mean) / sqrt(var + eps) + shift, statistics of x itself, so
    training and eval compute the same thing and there are no running statistics to keep.
    It does not fold into the Linear before it (its scale depends on the input)."""

    per_position = True

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


class Embedding(Layer):
    """A lookup table of character vectors: ids (B, T) -> (B, T, n_embd)."""

    per_position = True
    decayed = ("weight",)

    def __init__(self, num: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, dim))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.weight[idx]

    def draw_(self, generator: torch.Generator, config: ModelConfig, is_output: bool) -> None:
        self.weight.copy_(torch.randn(self.weight.shape, generator=generator))  # N(0, 1), as the lecture's C


class Flatten(Layer):
    """Concatenate the context's vectors: (B, T, C) -> (B, T * C)."""

    per_position = False  # a merge: Folded groups rows itself

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1)

    def merge_size(self, positions: int) -> int | None:
        return positions


class FlattenConsecutive(Layer):
    """Concatenate each group of `n` neighbours: (B, T, C) -> (B, T // n, C * n).

    The hierarchical model's merge step; a time axis of length 1 is dropped, so the last
    level hands (B, C * n) to the output layer.
    """

    per_position = False  # a merge: Folded groups rows itself

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, channels = x.shape
        x = x.reshape(batch, time // self.n, channels * self.n)
        return x.squeeze(1) if x.shape[1] == 1 else x

    def merge_size(self, positions: int) -> int | None:
        return self.n

    def extra_repr(self) -> str:
        return str(self.n)


class Linear(Layer):
    """y = x @ W (+ b), with W stored (fan_in, fan_out) as in the lecture (same random draws)."""

    per_position = True
    decayed = ("weight",)  # not the bias (docs/regularisation.md)

    def __init__(self, fan_in: int, fan_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fan_in, fan_out))
        self.bias = nn.Parameter(torch.empty(fan_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight
        return out if self.bias is None else out + self.bias

    def draw_(self, generator: torch.Generator, config: ModelConfig, is_output: bool) -> None:
        """N(0, 1) * gain / sqrt(fan_in) feeding a nonlinearity (or a BatchNorm), N(0, 1) * out_scale
        (/ sqrt(fan_in) for out_init "kaiming") for the output; a bias drawn, then zeroed on the
        output (the reference's `randn * 0` keeps every later random number in step with it)."""
        fan_in = self.weight.shape[0]
        if is_output:
            scale = config.out_scale / math.sqrt(fan_in) if config.out_init == "kaiming" else config.out_scale
        else:
            scale = config.gain / math.sqrt(fan_in)
        self.weight.copy_(torch.randn(self.weight.shape, generator=generator) * scale)
        if self.bias is not None:
            self.bias.copy_(torch.randn(self.bias.shape, generator=generator) * (0.0 if is_output else 0.01))


class Tanh(Layer):
    per_position = True
    nonlinearity = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014): in training, zero each value with probability p
    and scale the kept ones by 1 / (1 - p), so the next layer sees the same mean as in eval mode.

    The masks come from the run's one training generator, which only the training loop passes
    in: eval mode, calibration and diagnostics probes (no generator) see the identity and draw
    nothing. A training step draws, in this fixed order: its batch indices, then one uniform
    (B, ...) tensor per Dropout layer, from the input side to the output side (`draw_keep`).
    The fast step draws the same numbers in the same order, so resume stays exact.

    Sits after tanh, before the next Linear (see `build_model` and docs/regularisation.md).
    """

    per_position = True
    eval_identity = True
    draws_in_training = True

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

    def __init__(self, layers: list[Layer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits of each context; `generator` (training only) draws the dropout masks."""
        x = idx
        for layer in self.layers:
            x = layer(x, generator) if layer.draws_in_training else layer(x)
        return x

    def decayed_parameters(self) -> list[nn.Parameter]:
        """What weight decay shrinks: the embedding table and every Linear's weight matrix.

        Not BatchNorm's gain and shift, nor biases: a BatchNorm makes the Linear before it
        scale-invariant, so decaying that weight only raises its effective learning rate, while
        decaying a gain would shrink the layer's output itself (docs/regularisation.md).
        """
        return [getattr(layer, name) for layer in self.layers for name in layer.decayed]

    def batch_norms(self) -> list[BatchNorm]:
        """The layers with running statistics (eval mode's choice of running or calibrated ones)."""
        return [layer for layer in self.layers if layer.running_statistics]

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
    """Draw every parameter from `generator` in layer order, as the reference does: each layer
    draws its own (`Layer.draw_`); the last layer is the output one (a Linear, or the BatchNorm
    on the logits, after which the output Linear is initialised like the hidden ones)."""
    for layer in model.layers:
        layer.draw_(generator, config, is_output=layer is model.layers[-1])


def create_model(config: ModelConfig, vocab_size: int, generator: torch.Generator) -> NamesModel:
    model = build_model(config, vocab_size)
    initialise(model, config, generator)
    return model
