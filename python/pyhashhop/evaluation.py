# evaluate(generate_fn, ...): HashHop accuracy of any model that maps prompts to completions (a PyTorch or
# Hugging Face model behind a callback, as hash-hop-hub does). Usage: pyhashhop.evaluate(fn, sizes=[4000]).
from __future__ import annotations

import itertools
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from .bench import MultiHopSample, Scorer, generate

GenerateFn = Callable[[List[str]], List[str]]


def query_prompt(sample: MultiHopSample, key: str) -> str:
    """Magic's raw form for one query: prompt, newline, completion header, then ``KEY = '`` so the
    model's next characters are the answer (closed by a quote)."""
    return f"{sample.prompt}\n{sample.completion_header}{key} = '"


def parse_answer(completion: str) -> str:
    """The answer a model wrote after ``KEY = '``: up to the closing quote, or to the end of the line if
    it never closed one (the scorer then decides; an unclosed answer can still be right)."""
    end = completion.find("'")
    answer = completion if end < 0 else completion[:end]
    return answer.split("\n", 1)[0]


def evaluate(generate_fn: GenerateFn, *, sizes: Sequence[int] = (1000, 4000), hops: Sequence[int] = (1, 2),
             cot: Sequence[bool] = (False, True), hash_lengths: Sequence[int] = (8,), samples: int = 2,
             num_queries: int = 4, seed: int = 0, batch_size: int = 16, keep_predictions: bool = False,
             progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """Accuracy of ``generate_fn`` on HashHop, by hops, CoT, size and hash length.

    ``generate_fn(prompts) -> completions`` gets a list of at most ``batch_size`` prompts in Magic's raw
    form (see ``query_prompt``) and returns one string per prompt: the text the model writes next.
    Each cell (size, hops, cot, hash length) holds ``samples`` samples of ``num_queries`` queries; the
    samples' seeds are fixed (``seed`` + a running index, listed per cell in the result), so any run is
    repeatable and any sample can be rebuilt with ``pyhashhop.generate`` or ``hashhop gen --seed``.

    Returns the scorer's report (``overall``, ``by_hops``, ``by_cot``, ``by_chars``, each with
    ``queries``, ``exact``, ``exact_rate``, ``final_hash``, ``final_hash_rate``) plus ``by_hash_len``,
    ``cells`` (one entry per cell), ``config`` and ``seconds``; with ``keep_predictions`` also
    ``predictions`` (one entry per query: seed, key, expected, answer).
    """
    if samples < 1 or num_queries < 1 or batch_size < 1:
        raise ValueError(f"samples, num_queries and batch_size must be >= 1, got {samples}, {num_queries}, {batch_size}")
    started = time.perf_counter()
    overall = Scorer()
    by_hash_len: Dict[int, Scorer] = {}
    cells: List[Dict[str, Any]] = []
    predictions: List[Dict[str, Any]] = []

    # Every sample first, so the model sees full batches and a bad argument fails before any generation.
    work = []  # (cell index, sample)
    next_seed = seed
    for cell_index, (n_chars, n_hops, use_cot, hash_len) in enumerate(itertools.product(sizes, hops, cot, hash_lengths)):
        seeds = list(range(next_seed, next_seed + samples))
        next_seed += samples
        cells.append({"n_chars": n_chars, "hops": n_hops, "cot": bool(use_cot), "hash_len": hash_len, "seeds": seeds})
        for s in seeds:
            work.append((cell_index, generate(n_chars, num_queries, n_hops, hash_len, bool(use_cot), s)))

    prompts = [(i, key) for i, (_, sample) in enumerate(work) for key, _ in sample.queries]
    answers: Dict[tuple, str] = {}
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start:start + batch_size]
        texts = [query_prompt(work[i][1], key) for i, key in batch]
        completions = generate_fn(texts)
        if not isinstance(completions, (list, tuple)) or len(completions) != len(texts):
            got = len(completions) if isinstance(completions, (list, tuple)) else type(completions).__name__
            raise ValueError(f"generate_fn must return one completion per prompt: {len(texts)} prompts, got {got}")
        for (i, key), completion in zip(batch, completions):
            if not isinstance(completion, str):
                raise TypeError(f"generate_fn returned {type(completion).__name__}, expected str")
            answers[(i, key)] = parse_answer(completion)
        if progress is not None:
            progress(min(start + batch_size, len(prompts)), len(prompts))

    cell_scorers = [Scorer() for _ in cells]
    for i, (cell_index, sample) in enumerate(work):
        predicted = "\n".join(f"{key} = '{answers[(i, key)]}'" for key, _ in sample.queries)
        overall.add(sample.completion, predicted, sample.n_chars_problem)
        cell_scorers[cell_index].add(sample.completion, predicted, sample.n_chars_problem)
        by_hash_len.setdefault(sample.hash_pair_str_length, Scorer()).add(sample.completion, predicted,
                                                                         sample.n_chars_problem)
        if keep_predictions:
            predictions.extend({"seed": sample.seed, "key": key, "expected": expected, "answer": answers[(i, key)]}
                               for key, expected in sample.queries)

    result = overall.report()
    result["by_hash_len"] = {str(length): scorer.report()["overall"] for length, scorer in sorted(by_hash_len.items())}
    for cell, scorer in zip(cells, cell_scorers):
        cell.update(scorer.report()["overall"])
    result["cells"] = cells
    result["config"] = {"sizes": list(sizes), "hops": list(hops), "cot": [bool(c) for c in cot],
                        "hash_lengths": list(hash_lengths), "samples": samples, "num_queries": num_queries,
                        "seed": seed, "prompt_form": "magic_raw"}
    result["seconds"] = time.perf_counter() - started
    if keep_predictions:
        result["predictions"] = predictions
    return result


def perfect_generate_fn(prompts: List[str]) -> List[str]:
    """A generate_fn that answers with the exact reference solver (100%): the ceiling, and a check
    that a pipeline around evaluate() passes prompts through unchanged."""
    from .bench import solve

    out = []
    for text in prompts:
        # The prompt ends "...\nCOMPLETION:\nHops=H\n\nCoT=B\n\nKEY = '": rebuild a one-query completion.
        body, _, header_and_query = text.rpartition("\nCOMPLETION:\n")
        header, _, query = header_and_query.rpartition("\n\n")
        key = query[:-len(" = '")]
        solved = solve(body, f"COMPLETION:\n{header}\n\n{key} = 'x'\n")
        answer = solved.rsplit(f"{key} = '", 1)[1]
        out.append(answer)  # ends with the closing quote and newline, as a model would write them
    return out


def hf_generate_fn(model: Any, tokenizer: Any, max_new_tokens: int = 64) -> GenerateFn:
    """A generate_fn over a Hugging Face causal LM: greedy decoding of ``max_new_tokens`` per prompt.

    ``tokenizer`` needs only ``encode(text) -> ids`` and ``decode(ids) -> text`` (any HF tokenizer has
    both). Prompts run one at a time, so no padding side or attention mask has to be right.
    """
    import torch

    def fn(prompts: List[str]) -> List[str]:
        out = []
        device = next(model.parameters()).device
        for text in prompts:
            ids = torch.tensor([tokenizer.encode(text)], dtype=torch.long, device=device)
            with torch.no_grad():
                generated = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                           do_sample=False)
            out.append(tokenizer.decode(generated[0, ids.shape[1]:].tolist()))
        return out

    return fn
