# The HashHop benchmark from Python: Magic.dev-compatible samples (MultiHopEval.make_one), seeded generation,
# the exact solver and the scorer, all from the C++ library. Usage: see the package docstring (pyhashhop).
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from . import _core

CHARS_PER_TOKEN: int = _core.CHARS_PER_TOKEN
FormatError = _core.FormatError


@dataclass
class MultiHopSample:
    """One HashHop problem, with the field names of Magic.dev's ``MultiHopSample``.

    ``prompt``, ``completion`` and ``targets`` are what Magic's ``make_one`` returns; the remaining
    fields record how the sample was made, so ``generate(**params)`` rebuilds it byte for byte.
    """

    prompt: str
    """The shuffled hash pairs, one ``K = V`` line each (``K = 'V'`` ends a chain)."""
    completion: str
    """What a model should write after the prompt: the header and one ``KEY = 'TARGET'`` line per query."""
    targets: Dict[str, str]
    """Every chain's first hash mapped to its target (not only the queried ones), as in Magic's."""
    n_chars_problem: int = 0
    num_queries: int = 0
    hops: int = 0
    hash_pair_str_length: int = 0
    chain_of_thought: bool = False
    seed: int = 0
    queries: List[Tuple[str, str]] = field(default_factory=list)
    """The queried (key, expected answer) pairs, in completion order."""

    @property
    def completion_header(self) -> str:
        """``COMPLETION:\\nHops=H\\n\\nCoT=B\\n\\n``: what precedes the first query line."""
        return f"COMPLETION:\nHops={self.hops}\n\nCoT={self.chain_of_thought}\n\n"


def _check_int(name: str, value: object) -> int:
    # bool is an int in Python; a True where a size belongs is a caller's mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    return value


def generate(n_chars_problem: int, num_queries: int = 5, hops: int = 2, hash_pair_str_length: int = 16,
             chain_of_thought: bool = False, seed: int = 0) -> MultiHopSample:
    """A HashHop sample, identical for the same arguments on every machine (``hashhop gen --seed``).

    Hashes are unique within a sample (Magic's generator can repeat one and merge two chains).
    Raises ValueError naming the argument for impossible requests (e.g. more queries than chains).
    """
    for name, value in (("n_chars_problem", n_chars_problem), ("num_queries", num_queries), ("hops", hops),
                        ("hash_pair_str_length", hash_pair_str_length), ("seed", seed)):
        _check_int(name, value)
    if n_chars_problem < 1 or num_queries < 1 or seed < 0:
        raise ValueError("n_chars_problem and num_queries must be >= 1 and seed >= 0, got "
                         f"{n_chars_problem}, {num_queries}, {seed}")
    try:
        prompt, completion, keys, values = _core.generate(n_chars_problem, num_queries, hops, hash_pair_str_length,
                                                          bool(chain_of_thought), seed)
    except ValueError as e:  # the library names its own fields (n_chars, hash_len): say Magic's names
        message = str(e).replace("n_chars", "n_chars_problem").replace("hash_len", "hash_pair_str_length")
        raise ValueError(message) from None
    return MultiHopSample(prompt=prompt, completion=completion, targets=dict(zip(keys, values)),
                          n_chars_problem=n_chars_problem, num_queries=num_queries, hops=hops,
                          hash_pair_str_length=hash_pair_str_length, chain_of_thought=bool(chain_of_thought),
                          seed=seed, queries=[tuple(q) for q in _core.parse_completion(completion)[2]])


def jsonl_record(n_chars_problem: int, num_queries: int = 5, hops: int = 2, hash_pair_str_length: int = 16,
                 chain_of_thought: bool = False, seed: int = 0) -> str:
    """One line of ``hashhop gen --format jsonl`` output (newline included), byte for byte."""
    return _core.jsonl_record(n_chars_problem, num_queries, hops, hash_pair_str_length, bool(chain_of_thought), seed)


def text_record(n_chars_problem: int, num_queries: int = 5, hops: int = 2, hash_pair_str_length: int = 16,
                chain_of_thought: bool = False, seed: int = 0) -> str:
    """One sample as ``hashhop gen --format text`` writes it: prompt, newline, completion."""
    return _core.text_record(n_chars_problem, num_queries, hops, hash_pair_str_length, bool(chain_of_thought), seed)


class MultiHopEval:
    """Drop-in for Magic.dev's ``from hashhop import MultiHopEval``: ``from pyhashhop import MultiHopEval``."""

    @staticmethod
    def make_one(n_chars_problem: int, num_queries: int, hops: int, hash_pair_str_length: int,
                 chain_of_thought: bool, seed: Optional[int] = None) -> MultiHopSample:
        """Magic's signature and fields. Without ``seed``, one is drawn from Python's ``random`` module,
        so ``random.seed(...)`` makes a script reproducible as it did with Magic's generator; the seed
        used is kept in ``sample.seed``."""
        if seed is None:
            seed = random.getrandbits(63)
        return generate(n_chars_problem, num_queries, hops, hash_pair_str_length, chain_of_thought, seed)


def solve(prompt: str, completion: str) -> str:
    """The exact reference solver: answers every query of ``completion`` from ``prompt`` alone and
    returns a completion in Magic's layout (what a perfect model writes)."""
    return _core.solve(prompt, completion)


def parse_completion(completion: str) -> Tuple[int, bool, List[Tuple[str, str]]]:
    """``(hops, cot, [(key, answer), ...])`` of a completion in Magic's strict layout."""
    return _core.parse_completion(completion)


def parse_answers(text: str) -> Dict[str, str]:
    """Every ``KEY = 'ANSWER'`` line of a model's output, header or not (how predictions are read)."""
    return dict(_core.parse_answers(text))


class Scorer:
    """Exact match per query (a CoT answer counts only if the whole chain is right) and final-hash
    accuracy, by hops, CoT and size: the scorer of ``hashhop score``."""

    def __init__(self) -> None:
        self._scorer = _core.Scorer()

    def add(self, expected_completion: str, predicted: str, n_chars: int) -> None:
        """Scores one sample: its expected completion against a model's text (any ``K = 'A'`` lines)."""
        self._scorer.add(expected_completion, predicted, n_chars)

    def report(self) -> dict:
        """``{"records", "overall", "by_hops", "by_cot", "by_chars"}`` with counts and rates,
        the JSON of ``hashhop score --json``."""
        return json.loads(self._scorer.report_json())

    def table(self) -> str:
        """The human-readable table ``hashhop score`` prints."""
        return self._scorer.table()


def score(samples: Iterable[MultiHopSample], predictions: Iterable[str]) -> dict:
    """Scores predicted completions against samples (same order); see ``Scorer.report``."""
    scorer = Scorer()
    samples, predictions = list(samples), list(predictions)
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
    for sample, predicted in zip(samples, predictions):
        scorer.add(sample.completion, predicted, sample.n_chars_problem)
    return scorer.report()
