"""The string constraints of `sample` (prefix, suffix, contains, without, match) as one
deterministic automaton over a model's ids.

Each constraint is a regular language: --prefix P is `P.*`, --suffix S is `.*S`, --contains C is
`.*C.*`, --without W is everything but `.*W.*`, and --match R is R itself (Python `re.fullmatch`
semantics). `interegular` turns each into a finite-state machine and intersects them; the result
is read into a dense table over the model's characters, and every state from which no accepting
state can be reached is dropped, so a row of a sampler is dead the moment it leaves the table.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import warnings
from dataclasses import dataclass

import interegular
import torch
from interegular.fsm import FSM
from interegular.patterns import _NonCapturing

from bnnames.config import SampleConfig
from bnnames.data import Vocab
from bnnames.errors import ConfigError
from bnnames.storage.header import short

DEAD = -1  # the next state of a character after which no name can satisfy the constraints


@dataclass(frozen=True)
class Automaton:
    """A deterministic automaton over ids 1..V-1 (the BOUNDARY column is DEAD: ending is read
    from `accepting`). Every state can reach an accepting one."""

    step: torch.Tensor  # (S, V) int64: the state after each id, DEAD where no name can follow
    accepting: torch.Tensor  # (S,) bool: a name may end in this state
    shortest: torch.Tensor  # (S,) int64: the fewest characters from this state to an accepting one
    start: int
    described: str  # the constraints, as the user spelt them, for messages

    @property
    def states(self) -> int:
        return self.step.shape[0]

    @property
    def trivial(self) -> bool:
        """True when every string is accepted: no constraint at all."""
        return self.states == 1 and bool(self.accepting[0]) and bool((self.step[0, 1:] == 0).all())

    def accepts(self, ids: list[int]) -> bool:
        steps, state = self._steps, self.start
        for i in ids:
            state = steps[state][i]
            if state == DEAD:
                return False
        return self._accepting[state]

    @functools.cached_property
    def _steps(self) -> list[list[int]]:  # plain lists: 32k names checked in 0.05 s, not 0.9 s
        return self.step.tolist()

    @functools.cached_property
    def _accepting(self) -> list[bool]:
        return self.accepting.tolist()


def string_constraints(config: SampleConfig) -> list[tuple[str, str]]:
    """(how the user spelt it, the regular expression) for every string constraint of `config`."""
    out = []
    if config.prefix:
        out.append((f"--prefix {config.prefix!r}", re.escape(config.prefix) + ".*"))
    if config.suffix:
        out.append((f"--suffix {config.suffix!r}", ".*" + re.escape(config.suffix)))
    out += [(f"--contains {text!r}", ".*" + re.escape(text) + ".*") for text in config.contains]
    out += [(f"--without {text!r}", ".*" + re.escape(text) + ".*") for text in config.without]
    if config.match is not None:
        out.append((f"--match {config.match!r}", config.match))
    return out


def compile_constraints(config: SampleConfig, vocab: Vocab) -> Automaton:
    """The automaton of every string constraint of `config` over `vocab`, checked against the
    length limits: a constraint (or the set of them) that no name of the allowed lengths made of
    the model's characters satisfies is a ConfigError naming it."""
    _check_characters(config, vocab)
    parts = string_constraints(config)
    machines = [_fsm(spelt, pattern, spelt.startswith("--without")) for spelt, pattern in parts]
    for (spelt, _), machine in zip(parts, machines):
        _check_lengths(_dense(machine, vocab, spelt), config, f"{spelt} matches", vocab)
    whole = FSM.intersection(*machines) if len(machines) > 1 else machines[0] if machines else _everything()
    described = " ".join(spelt for spelt, _ in parts) or "no constraint"
    automaton = _dense(whole.reduce(), vocab, described)
    _check_lengths(automaton, config, f"{described} together match" if len(parts) > 1 else "", vocab)
    return automaton


def _check_characters(config: SampleConfig, vocab: Vocab) -> None:
    known = set(vocab.chars)
    for flag, texts in (("--prefix", [config.prefix]), ("--suffix", [config.suffix]), ("--contains", config.contains)):
        for text in texts:
            unknown = "".join(sorted(set(text) - known))
            if unknown:
                raise ConfigError(
                    f"{flag} {text!r} has characters not in the vocabulary of this model: {unknown!r} "
                    f"(it knows {short(''.join(vocab.chars), 80)})"
                )


def _fsm(spelt: str, pattern: str, negate: bool) -> FSM:
    """The FSM of one constraint; a regex interegular cannot read exactly is refused by name."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # re's FutureWarnings about nested sets: the syntax is still valid
            re.compile(pattern)
    except re.error as err:
        raise ConfigError(f"{spelt} is not a valid regular expression: {err}") from None
    try:
        parsed = interegular.parse_pattern(pattern)
        if _has_lookaround(parsed):  # interegular reads them as if more text followed: not fullmatch
            raise interegular.Unsupported("lookahead and lookbehind assertions")
        machine = parsed.to_fsm()
    except (interegular.Unsupported, interegular.InvalidSyntax) as err:
        raise ConfigError(
            f"{spelt} uses regex syntax the constraint automaton cannot express ({err}): "
            "use plain characters, classes [..], groups, | and repetition"
        ) from None
    return machine.everythingbut() if negate else machine


def _has_lookaround(node: object) -> bool:
    if isinstance(node, _NonCapturing):
        return True
    if isinstance(node, tuple):
        return any(map(_has_lookaround, node))
    if dataclasses.is_dataclass(node):
        return any(_has_lookaround(getattr(node, f.name)) for f in dataclasses.fields(node))
    return False


def _everything() -> FSM:
    return interegular.parse_pattern("(.|\n)*").to_fsm()


def _dense(machine: FSM, vocab: Vocab, described: str) -> Automaton:
    """`machine` read into a table over the vocabulary's ids, trimmed to the states that can
    still reach an accepting one, numbered in breadth-first order from the start (state 0)."""
    ids = range(1, vocab.size)
    order, seen = [machine.initial], {machine.initial: 0}
    moves: list[list[int | None]] = []
    for state in order:  # breadth-first: a deterministic numbering
        row: list[int | None] = [None] * vocab.size
        for i in ids:
            nxt = machine.map.get(state, {}).get(machine.alphabet[vocab.chars[i - 1]])
            if nxt is not None:
                row[i] = seen.setdefault(nxt, len(order))
                if row[i] == len(order):
                    order.append(nxt)
        moves.append(row)
    accepting = [state in machine.finals for state in order]
    shortest = _shortest(moves, accepting)
    live = [i for i, d in enumerate(shortest) if d is not None]
    number = {old: new for new, old in enumerate(live)}
    step = torch.full((max(len(live), 1), vocab.size), DEAD, dtype=torch.long)
    for new, old in enumerate(live):
        for i, nxt in enumerate(moves[old]):
            if nxt is not None and nxt in number:
                step[new, i] = number[nxt]
    return Automaton(
        step=step,
        accepting=torch.tensor([accepting[old] for old in live] or [False]),
        shortest=torch.tensor([shortest[old] for old in live] or [0], dtype=torch.long),
        start=0 if live and live[0] == 0 else DEAD,
        described=described,
    )


def _shortest(moves: list[list[int | None]], accepting: list[bool]) -> list[int | None]:
    """The fewest characters from each state to an accepting one (None: none can be reached),
    by breadth-first search backwards from the accepting states."""
    back: list[list[int]] = [[] for _ in moves]
    for state, row in enumerate(moves):
        for nxt in row:
            if nxt is not None:
                back[nxt].append(state)
    dist: list[int | None] = [0 if a else None for a in accepting]
    frontier = [s for s, a in enumerate(accepting) if a]
    while frontier:
        nxt_frontier = []
        for state in frontier:
            for prev in back[state]:
                if dist[prev] is None:
                    dist[prev] = dist[state] + 1  # type: ignore[operator]
                    nxt_frontier.append(prev)
        frontier = nxt_frontier
    return dist


def accepted_lengths(automaton: Automaton, max_length: int) -> list[bool]:
    """For each length 0..max_length, whether some string of that length is accepted."""
    if automaton.start == DEAD:
        return [False] * (max_length + 1)
    reach = torch.zeros(automaton.states, dtype=torch.bool)
    reach[automaton.start] = True
    out = []
    for _ in range(max_length + 1):
        out.append(bool((reach & automaton.accepting).any()))
        targets = automaton.step[reach].flatten()
        reach = torch.zeros_like(reach)
        reach[targets[targets != DEAD]] = True
    return out


def _check_lengths(automaton: Automaton, config: SampleConfig, what: str, vocab: Vocab) -> None:
    """A ConfigError, naming the constraint (`what`), when no allowed length is accepted."""
    lengths = accepted_lengths(automaton, config.max_length)
    if any(lengths[config.min_length :]):
        return
    what = what or f"{automaton.described} matches"
    if automaton.start == DEAD:
        raise ConfigError(
            f"{what} no name made of this model's characters (it knows {short(''.join(vocab.chars), 80)})"
        )
    shortest = int(automaton.shortest[automaton.start])
    if shortest > config.max_length:
        raise ConfigError(f"{what} only names of {shortest} or more characters, above --max-length {config.max_length}")
    raise ConfigError(
        f"{what} no name of {config.min_length} to {config.max_length} characters (see --min-length and --max-length)"
    )
