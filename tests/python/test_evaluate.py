# Tests of pyhashhop.evaluate(): the reference solver scores 100%, wrong answers 0%, and a tiny random
# transformers model runs end to end. Run: PYHASHHOP_TEST_STRICT=1 python -m pytest -q tests/python/test_evaluate.py
import pytest

import pyhashhop
from conftest import need


def test_perfect_generate_fn_scores_everything():
    result = pyhashhop.evaluate(pyhashhop.perfect_generate_fn, sizes=[600, 2000], hops=[1, 2, 3], cot=[False, True],
                                hash_lengths=[4, 8], samples=2, num_queries=3, seed=10, batch_size=7,
                                keep_predictions=True)
    cells = 2 * 3 * 2 * 2
    assert result["overall"]["queries"] == cells * 2 * 3
    assert result["overall"]["exact_rate"] == 1.0
    assert set(result["by_hops"]) == {"1", "2", "3"} and set(result["by_chars"]) == {"600", "2000"}
    assert set(result["by_hash_len"]) == {"4", "8"} and result["by_hash_len"]["4"]["exact_rate"] == 1.0
    assert len(result["cells"]) == cells and all(c["exact_rate"] == 1.0 for c in result["cells"])
    # Seeds are fixed and distinct across cells: a rerun sees the very same samples.
    seeds = [s for c in result["cells"] for s in c["seeds"]]
    assert seeds == list(range(10, 10 + cells * 2))
    assert all(p["answer"] == p["expected"] for p in result["predictions"])


def test_prompts_are_magics_raw_form_and_batches_are_respected():
    seen = []

    def echo_first_hash(prompts):
        seen.append(list(prompts))
        return ["abc' trailing text\nmore" for _ in prompts]  # an answer, the closing quote, then noise

    result = pyhashhop.evaluate(echo_first_hash, sizes=[500], hops=[2], cot=[False], hash_lengths=[8], samples=3,
                                num_queries=2, batch_size=4, keep_predictions=True)
    assert [len(batch) for batch in seen] == [4, 2]
    sample = pyhashhop.generate(500, 2, 2, 8, False, 0)
    key = sample.queries[0][0]
    assert seen[0][0] == f"{sample.prompt}\nCOMPLETION:\nHops=2\n\nCoT=False\n\n{key} = '"
    assert all(p["answer"] == "abc" for p in result["predictions"])  # parsed up to the closing quote
    assert result["overall"]["exact"] == 0 and result["overall"]["queries"] == 6


def test_one_wrong_answer_in_a_cell_is_counted_there():
    calls = {"n": 0}

    def all_right_but_first(prompts):
        answers = pyhashhop.perfect_generate_fn(prompts)
        if calls["n"] == 0:
            answers[0] = "wrong'"
        calls["n"] += 1
        return answers

    result = pyhashhop.evaluate(all_right_but_first, sizes=[800], hops=[1, 2], cot=[False], hash_lengths=[8],
                                samples=1, num_queries=4)
    assert result["overall"]["exact"] == 7
    assert [c["exact"] for c in result["cells"]] == [3, 4]


def test_bad_generate_fn_results_are_errors():
    with pytest.raises(ValueError, match="one completion per prompt"):
        pyhashhop.evaluate(lambda prompts: prompts[:-1], sizes=[500], hops=[1], cot=[False], samples=1)
    with pytest.raises(TypeError, match="expected str"):
        pyhashhop.evaluate(lambda prompts: [1] * len(prompts), sizes=[500], hops=[1], cot=[False], samples=1)


class ByteTokenizer:
    """Token i is byte i (a vocabulary of 256), built here so no tokenizer is downloaded."""

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids):
        return bytes(ids).decode(errors="replace")


def test_tiny_random_transformers_model_runs_end_to_end():
    torch = need("torch")
    transformers = need("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=256, n_positions=1024, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0, pad_token_id=0)
    model = transformers.GPT2LMHeadModel(config).eval()  # random weights, nothing downloaded
    fn = pyhashhop.hf_generate_fn(model, ByteTokenizer(), max_new_tokens=12)
    result = pyhashhop.evaluate(fn, sizes=[300], hops=[1, 2], cot=[False, True], hash_lengths=[4], samples=1,
                                num_queries=2, keep_predictions=True)
    assert result["overall"]["queries"] == 8
    assert 0.0 <= result["overall"]["exact_rate"] <= 1.0
    assert len(result["predictions"]) == 8
    # The answers are what the model wrote (random bytes cut at a quote or newline), not placeholders.
    assert all("'" not in p["answer"] and "\n" not in p["answer"] for p in result["predictions"])
    assert any(p["answer"] for p in result["predictions"])
