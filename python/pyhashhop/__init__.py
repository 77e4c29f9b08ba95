# pyhashhop: the hashhop project from Python (Magic.dev-compatible HashHop samples, solver, scorer, evaluate()).
# Usage: `from pyhashhop import MultiHopEval, evaluate`; torch ops: `from pyhashhop import ops` (needs torch).
"""HashHop from Python.

>>> from pyhashhop import MultiHopEval            # was: from hashhop import MultiHopEval (Magic.dev)
>>> s = MultiHopEval.make_one(n_chars_problem=3000, num_queries=2, hops=2,
...                           hash_pair_str_length=8, chain_of_thought=False, seed=1)
>>> s.prompt, s.completion, s.targets             # Magic's fields, byte-identical to `hashhop gen --seed 1`

``evaluate(generate_fn)`` scores any model that maps prompts to completions; ``pyhashhop.ops`` wraps
``torch.ops.hashhop.*`` (imported on first use, since it needs torch).
"""
from __future__ import annotations

from typing import Any

from ._core import attention_cases
from .bench import (CHARS_PER_TOKEN, FormatError, MultiHopEval, MultiHopSample, Scorer, generate, jsonl_record,
                    parse_answers, parse_completion, score, solve, text_record)
from .evaluation import evaluate, hf_generate_fn, parse_answer, perfect_generate_fn, query_prompt

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `pyhashhop.ops` imports torch; load it only when asked so the benchmark works without torch.
    if name == "ops":
        import importlib

        return importlib.import_module(".ops", __name__)
    raise AttributeError(f"module 'pyhashhop' has no attribute {name!r}")


__all__ = ["CHARS_PER_TOKEN", "FormatError", "MultiHopEval", "MultiHopSample", "Scorer", "attention_cases", "evaluate", "generate",
           "hf_generate_fn", "jsonl_record", "parse_answer", "parse_answers", "parse_completion", "perfect_generate_fn",
           "query_prompt", "score", "solve", "text_record"]
