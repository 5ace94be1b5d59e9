"""Typed, frozen settings. Every default is defined here once; the CLI reads them from here.

This module must not import torch: the CLI builds its `--help` from these classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from bnnames.errors import ConfigError

# Every choice is a Literal: the configs check it, and Typer builds its usage error (exit 2) and
# shell completion from the same type.
Arch = Literal["mlp", "wavenet"]
Norm = Literal["batch", "layer", "none"]
BNStyle = Literal["paper", "lecture"]
OutInit = Literal["normal", "kaiming"]
Engine = Literal["auto", "compiled", "eager", "reference"]  # see bnnames.training.engines
Device = Literal["auto", "cpu", "cuda", "mps"]
Split = Literal["train", "val", "test"]
SplitChoice = Literal["train", "val", "test", "all"]
Stats = Literal["running", "calibrated"]
Method = Literal["full", "paper"]  # calibration: the whole training split, or Algorithm 2's averages
PresetName = Literal["default", "lecture", "deep", "wavenet", "best"]
Schedule = Literal["plateau", "fixed"]  # see bnnames.schedule
Weights = Literal["best", "last"]  # which weights of a checkpoint a verb uses (see choose_weights)
ScoreSort = Literal["input", "likelihood", "loss"]  # score's rows: as given, most likely, fewest nats per char

TANH_GAIN = 5 / 3  # Kaiming gain for tanh: keeps activations near unit std at init
COMPILE_MIN_STEPS = 50_000  # "auto" compiles an uncached step only for runs this long (docs/performance.md)
SAVE_EVERY = 10_000  # steps between periodic checkpoint saves of a training run
MAX_STEPS = 10**10  # the most --steps (and --decay-at) can be: a decay there never happens
EVAL_EVERY_RANGE = (100, 1_000)  # --eval-every 0 (auto): one pass over the training split, within these


def choices(kind: Any) -> tuple[str, ...]:
    """The values of a Literal choice type, e.g. choices(Split) == ("train", "val", "test")."""
    return get_args(kind)


def knob(default: Any, help: str) -> Any:
    """A config field that is also a `bnnames train` option: its default and help, declared once."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network. Defaults are the reference model of the makemore BatchNorm lecture."""

    # "mlp" flattens the whole context; "wavenet", the hierarchical model, first merges pairs of
    # neighbours in each hidden layer (block_size must be 2 ** n_layers)
    arch: Arch = knob("mlp", "Architecture: mlp (flatten the context) or wavenet (merge pairs per layer).")
    block_size: int = knob(3, "Context length: how many previous characters predict the next one.")
    n_embd: int = knob(10, "Embedding width per character.")
    n_hidden: int = knob(200, "Width of each hidden Linear -> BatchNorm -> tanh layer.")
    n_layers: int = knob(1, "Number of hidden layers (wavenet: levels of the tree).")
    # "none" gives Linear layers a bias instead, to see what BN changes
    norm: Norm = knob(
        "batch",
        "Normalisation: batch, layer (LayerNorm per example, no running statistics), "
        "or none (no normalisation; sets --gain 5/3 unless given).",
    )
    norm_logits: bool = knob(False, "A BatchNorm on the logits too (the lecture's deep MLP).")
    gain: float = knob(TANH_GAIN, "Init gain of hidden Linear layers: N(0,1) * gain / sqrt(fan_in).")
    # "lecture": unbiased std, no eps, a running std buffer (the notebook's arithmetic)
    bn_style: BNStyle = knob("paper", "BatchNorm arithmetic: paper (Algorithm 1) or lecture (the notebook's).")
    # running = (1 - momentum) * running + momentum * batch statistic
    bn_momentum: float = knob(0.001, "Momentum of the running statistics.")
    bn_eps: float = knob(1e-5, "BatchNorm epsilon, added to the variance (paper style).")
    # output weights are N(0,1) * out_scale ("normal", the lecture's W2 * 0.01) or, "kaiming",
    # N(0,1) / sqrt(fan_in) * out_scale (the later lectures' "last layer weight *= 0.1"); with
    # norm_logits the logits' BatchNorm gain starts at out_scale instead: a confidence-free start
    out_scale: float = knob(0.01, "Scale of the output layer's initial weights (or the logits' BatchNorm gain).")
    out_init: OutInit = knob("normal", "Output init: normal, or kaiming (also divides by sqrt(fan_in)).")
    # after each hidden tanh, before the next Linear: a BatchNorm never sees its own layer's
    # dropout noise (see bnnames.model.Dropout and docs/regularisation.md); 0 builds no dropout layer
    dropout: float = knob(0.0, "Dropout probability after each hidden tanh, in training only (0: none).")

    @property
    def uses_batch_norm(self) -> bool:
        """BatchNorm after every hidden Linear; build_model reads this, so the two never disagree."""
        return self.norm == "batch"

    @property
    def batch_norm_on_logits(self) -> bool:
        """A BatchNorm on the logits too: only in a BatchNorm model (--norm none means none at all)."""
        return self.uses_batch_norm and self.norm_logits

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, Arch)
        check_choice("norm", self.norm, Norm)
        check_choice("bn_style", self.bn_style, BNStyle)
        check_choice("out_init", self.out_init, OutInit)
        _check_range("gain", self.gain, 0.0, 100.0)
        _check_range("block_size", self.block_size, 1, 64)
        _check_range("n_embd", self.n_embd, 1, 4096)
        _check_range("n_hidden", self.n_hidden, 1, 16384)
        _check_range("n_layers", self.n_layers, 1, 64)
        _check_range("bn_momentum", self.bn_momentum, 0.0, 1.0)
        _check_range("bn_eps", self.bn_eps, 0.0, 1.0)
        _check_range("out_scale", self.out_scale, 0.0, 100.0)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be at least 0 and below 1 (got {self.dropout}): it is a probability")
        if self.arch == "wavenet" and self.block_size != 2**self.n_layers:
            raise ConfigError(
                f"the wavenet architecture merges pairs of neighbours once per layer, so --block-size must be "
                f"2 ** --n-layers: got block size {self.block_size} with {self.n_layers} layer(s) "
                f"(try --block-size {2**self.n_layers}, or --n-layers to match)"
            )


@dataclass(frozen=True)
class TrainConfig:
    """How the model is optimised: plain SGD with one step decay of the learning rate, at a
    plateau of the validation loss (then the run stops at the next plateau) or at a fixed step."""

    steps: int = knob(200_000, "Total optimisation steps of the run (the ceiling with --schedule plateau).")
    batch_size: int = knob(32, "Examples per mini-batch (BatchNorm needs at least 2).")
    lr: float = knob(0.1, "Learning rate before the decay.")
    schedule: Schedule = knob(
        "plateau",
        "plateau: decay the lr when val stops improving, stop at the next plateau; fixed: decay at --decay-at.",
    )
    decay_at: int = knob(
        100_000, "Step from which the learning rate is lr * decay (sets --schedule fixed unless given)."
    )
    decay: float = knob(0.1, "Learning-rate decay factor.")
    # evaluations are cheap (each distinct context once, BatchNorm folded): 0 picks one pass over
    # the training split, clamped to EVAL_EVERY_RANGE, when the run starts, and stores it
    eval_every: int = knob(0, "Measure the val loss every N steps (0: one pass over the training split, 100-1000).")
    patience: int = knob(20, "Evaluations without a new best val loss that make a plateau (--schedule plateau).")
    seed: int = knob(2147483647, "Seed of the one generator that draws the init, then every mini-batch.")
    # decoupled (SGDW): p -= lr * weight_decay * p on embeddings and Linear weights, never on
    # BatchNorm gains and shifts or biases (see docs/regularisation.md); 0 leaves the step as it was
    weight_decay: float = knob(0.0, "Decoupled weight decay of the embeddings and Linear weights (0: none).")
    split_seed: int = knob(42, "Seed of the shuffle that makes the 80/10/10 train/val/test split.")
    # compiled or eager: the hand-derived step; reference: autograd (see bnnames.training.engines)
    engine: Engine = knob("auto", "Training loop (auto: compiled for long runs on the CPU, else eager or reference).")

    def __post_init__(self) -> None:
        check_choice("engine", self.engine, Engine)
        check_choice("schedule", self.schedule, Schedule)
        _check_range("eval_every", self.eval_every, 0, 10**10)
        _check_range("patience", self.patience, 1, 10**6)
        _check_range("steps", self.steps, 1, MAX_STEPS)
        if self.batch_size < 2:
            raise ConfigError(
                f"--batch-size must be at least 2 (got {self.batch_size}): BatchNorm normalises "
                "each feature over the batch and needs more than one value per feature"
            )
        _check_range("batch_size", self.batch_size, 2, 1 << 20)
        if not (self.lr > 0 and self.lr < float("inf")):
            raise ConfigError(f"--lr must be a positive number (got {self.lr})")
        _check_range("decay_at", self.decay_at, 0, MAX_STEPS)
        _check_range("decay", self.decay, 0.0, 1e6)
        _check_range("weight_decay", self.weight_decay, 0.0, 1.0)
        _check_range("seed", self.seed, 0, 2**63 - 1)
        _check_range("split_seed", self.split_seed, 0, 2**63 - 1)

    def lr_at(self, step: int) -> float:
        """Step decay from the reference schedule: lr until `decay_at`, then lr * decay."""
        return self.lr if step < self.decay_at else self.lr * self.decay

    def eval_interval(self, train_examples: int) -> int:
        """--eval-every, or for 0 about one pass over the training split (a multiple of 100)."""
        if self.eval_every:
            return self.eval_every
        low, high = EVAL_EVERY_RANGE
        return min(max(int(round(train_examples / self.batch_size, -2)), low), high)


@dataclass(frozen=True)
class SampleConfig:
    """Which names `bnnames sample` draws (see docs/sampling.md): a draw follows the model's
    distribution after temperature, top-k and top-p, conditioned on every constraint below."""

    count: int = 20  # how many names to print
    seed: int | None = None  # same seed, same names; None draws a fresh seed
    temperature: float = 1.0  # < 1 sharper and more common names, > 1 wilder ones
    top_k: int | None = None  # sample only among the k likeliest next characters
    top_p: float | None = None  # then only among the likeliest characters whose probability reaches p
    prefix: str = ""  # every name starts with these characters
    suffix: str = ""  # every name ends with these characters
    contains: tuple[str, ...] = ()  # every name contains each of these
    without: tuple[str, ...] = ()  # no name contains any of these
    match: str | None = None  # every whole name matches this regex (re.fullmatch)
    min_length: int = 1  # shortest name, in characters
    max_length: int = 30  # longest name: a longer one is never drawn (conditioned on, never cut)
    unique: bool = False  # no name twice in the output
    min_distance: int = 0  # with --novel: at least this many edits (Levenshtein) from every known name
    like: str | None = None  # output sorted by Levenshtein distance to this word
    ranked: bool = False  # the count most likely names (temperature 1), most likely first, instead of draws
    max_draws: int = 10_000_000  # names drawn by rejection sampling (models too large for the exact one)
    batch: int = 8192  # names advanced together (one step costs little more for 8192 rows than for 1)

    @property
    def constrained(self) -> bool:
        """Constraints beyond a prefix and the longest length (the plain sampler's own)."""
        return bool(self.suffix or self.contains or self.without or self.match is not None or self.min_length > 1)

    def __post_init__(self) -> None:
        _check_range("count", self.count, 1, 10**8)
        if not (0 < self.temperature < float("inf")):
            raise ConfigError(f"--temperature must be a positive number (got {self.temperature})")
        if self.top_k is not None:
            _check_range("top_k", self.top_k, 1, 1 << 20)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be above 0 and at most 1 (got {self.top_p}): it is a probability")
        _check_range("max_length", self.max_length, 1, 10_000)
        _check_range("min_length", self.min_length, 1, 10_000)
        if self.min_length > self.max_length:
            raise ConfigError(
                f"--min-length {self.min_length} is above --max-length {self.max_length}: no name can be both"
            )
        if len(self.prefix) >= self.max_length:
            raise ConfigError(f"--prefix {self.prefix!r} leaves no room under --max-length {self.max_length}")
        for name, texts in (("suffix", [self.suffix]), ("contains", self.contains)):
            for text in texts:
                if len(text) > self.max_length:
                    raise ConfigError(f"{flag(name)} {text!r} is longer than --max-length {self.max_length}")
        if "" in self.contains or "" in self.without:
            raise ConfigError("--contains and --without need some text (got an empty one)")
        if self.like is not None and not self.like:
            raise ConfigError("--like needs a word to compare the names with")
        _check_range("min_distance", self.min_distance, 0, 256)
        _check_range("max_draws", self.max_draws, 1, 10**10)
        _check_range("batch", self.batch, 1, 1 << 20)
        if self.ranked and (self.temperature != 1.0 or self.top_k is not None or self.top_p is not None):
            raise ConfigError(
                "--ranked lists the model's own most likely names (temperature 1, every character): "
                "drop --temperature, --top-k and --top-p"
            )


def preset(name: str) -> tuple[ModelConfig, TrainConfig]:
    """The named starting point; command-line options override single fields of it."""
    if name == "default":
        return ModelConfig(), TrainConfig()
    if name == "lecture":
        # the notebook's arithmetic exactly: unbiased std, no eps, a running std buffer
        return ModelConfig(bn_style="lecture"), TrainConfig(schedule="fixed")
    if name == "deep":
        # makemore part 3's deep MLP: five hidden layers of 100, BatchNorm after every Linear and
        # on the logits, whose gain starts at 0.1
        model = ModelConfig(n_hidden=100, n_layers=5, norm_logits=True, out_scale=0.1, out_init="kaiming")
        return model, TrainConfig(schedule="fixed", decay_at=150_000)  # the lecture's schedule, as measured
    if name == "wavenet":
        # makemore part 5's hierarchical model: 8 characters merged pairwise over three levels of
        # Linear(no bias) -> BatchNorm -> tanh of width 128; plain 1/sqrt(fan_in) init, last layer * 0.1
        model = ModelConfig(
            arch="wavenet",
            block_size=8,
            n_embd=24,
            n_hidden=128,
            n_layers=3,
            gain=1.0,
            out_scale=0.1,
            out_init="kaiming",
        )
        return model, TrainConfig(schedule="fixed", decay_at=150_000)  # the lecture's schedule, as measured
    if name == "best":
        # the best BatchNorm model found (docs/models.md, "The best BatchNorm model"): the wavenet,
        # wider (embedding 80, width 448) with dropout 0.1 after each tanh; the plateau schedule
        # (patience 10) decays the lr and stops before it overfits; the ceiling keeps the run
        # under 15 minutes on one CPU thread (it stops at 134k steps, in ~10 minutes, here)
        model, _ = preset("wavenet")
        model = dataclasses.replace(model, n_embd=80, n_hidden=448, dropout=0.1)
        return model, TrainConfig(steps=180_000, patience=10)
    raise ConfigError(f"unknown --preset {name!r}: choose one of {', '.join(choices(PresetName))}")


def to_json_dict(config: ModelConfig | TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_json_dict(cls: type, data: Any) -> Any:
    """Rebuild a config from stored JSON, refusing unknown fields and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{cls.__name__} has unknown fields: {', '.join(repr(k)[:40] for k in sorted(unknown)[:3])}")
    for name, value in data.items():
        default = getattr(cls, name, None)
        wanted = type(default) if default is not None else str
        ok = isinstance(value, wanted) and not (wanted is int and isinstance(value, bool))
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
            data = {**data, name: value}
        if not ok:
            raise ConfigError(f"{cls.__name__}.{name} must be {wanted.__name__}, got {repr(value)[:40]}")
    return cls(**data)


def check_choice(name: str, value: Any, kind: Any) -> None:
    """The one check of a choice (for library callers: the CLI's Literal options refuse earlier)."""
    if value not in choices(kind):
        raise ConfigError(f"unknown {flag(name)} {value!r}: choose one of {', '.join(choices(kind))}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not (low <= value <= high):
        raise ConfigError(f"{flag(name)} must be between {low} and {high} (got {value})")


def resolve_configs(preset_name: str, overrides: dict[str, Any]) -> tuple[ModelConfig, TrainConfig]:
    """A preset with single fields replaced, e.g. {"lr": 0.05, "n_hidden": 300}."""
    model, train = preset(preset_name)
    model_keys = {f.name for f in dataclasses.fields(ModelConfig)}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(overrides) - model_keys - train_keys
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    model_overrides = {k: v for k, v in overrides.items() if k in model_keys}
    if model_overrides.get("norm") == "none" and "gain" not in model_overrides:
        model_overrides["gain"] = TANH_GAIN  # without BN, tanh layers need their Kaiming gain to train
    train_overrides = {k: v for k, v in overrides.items() if k in train_keys}
    if "decay_at" in train_overrides and "schedule" not in train_overrides:
        train_overrides["schedule"] = "fixed"  # a decay step asks for the fixed schedule
    model = dataclasses.replace(model, **model_overrides)
    train = dataclasses.replace(train, **train_overrides)
    return model, train


def flag(name: str) -> str:
    """The command-line spelling of a config field: n_hidden -> --n-hidden."""
    return "--" + name.replace("_", "-")
