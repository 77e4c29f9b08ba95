# Tests of pyhashhop's benchmark half: byte identity with `hashhop gen`, Magic's make_one API, solve and score.
# Run: pip install . && PYHASHHOP_TEST_STRICT=1 python -m pytest -q tests/python/test_bench.py (make test does).
import dataclasses
import json
import random
import subprocess

import pytest

import pyhashhop
from pyhashhop import MultiHopEval, MultiHopSample

# (n_chars, queries, hops, hash_len, cot, seed): small and odd sizes, 1 and many hops, CoT on and off,
# hashes shorter than the unique prefix (3) and longer (16).
CASES = [(500, 3, 1, 8, False, 0), (2048, 5, 2, 16, True, 7), (777, 2, 4, 3, False, 123456789),
         (10_000, 10, 3, 12, True, 2**40)]


def gen_cli(cli, n_chars, queries, hops, hash_len, cot, seed, fmt):
    args = [str(cli), "gen", "--chars", str(n_chars), "--queries", str(queries), "--hops", str(hops), "--hash-len",
            str(hash_len), "--seed", str(seed), "--samples", "1", "--format", fmt, "--out", "-"]
    if cot:
        args.append("--cot")
    return subprocess.run(args, check=True, capture_output=True).stdout


@pytest.mark.parametrize("case", CASES)
def test_records_are_byte_identical_to_the_cli(cli, case):
    assert pyhashhop.jsonl_record(*case).encode() == gen_cli(cli, *case, "jsonl")
    assert pyhashhop.text_record(*case).encode() == gen_cli(cli, *case, "text")


@pytest.mark.parametrize("case", CASES)
def test_sample_fields_match_the_cli_record(cli, case):
    record = json.loads(gen_cli(cli, *case, "jsonl"))
    sample = pyhashhop.generate(*case)
    assert sample.prompt == record["prompt"]
    assert sample.completion == record["completion"]
    assert sample.targets == record["targets"]
    assert list(sample.targets) == list(record["targets"])  # same (chain) order too


def test_make_one_has_magics_signature_fields_and_types():
    sample = MultiHopEval.make_one(n_chars_problem=3000, num_queries=4, hops=2, hash_pair_str_length=8,
                                   chain_of_thought=False, seed=5)
    assert isinstance(sample, MultiHopSample)
    names = [f.name for f in dataclasses.fields(sample)]
    assert names[:3] == ["prompt", "completion", "targets"]  # Magic's MultiHopSample, in its order
    assert isinstance(sample.prompt, str) and isinstance(sample.completion, str) and isinstance(sample.targets, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in sample.targets.items())
    # Magic's sizing rule and layout: ceil(3000 / ((2*8+3)*2)) = 79 chains, 2 lines each.
    assert len(sample.targets) == 79
    lines = sample.prompt.split("\n")
    assert len(lines) == 158 and not sample.prompt.endswith("\n")
    assert sum(line.endswith("'") for line in lines) == 79
    assert sample.completion.startswith("COMPLETION:\nHops=2\n\nCoT=False\n\n") and sample.completion.endswith("'\n")
    assert len(sample.queries) == 4
    for key, answer in sample.queries:
        assert sample.targets[key] == answer and f"{key} = '{answer}'" in sample.completion


def test_make_one_accepts_magics_positional_call_and_cot_targets():
    sample = MultiHopEval.make_one(1000, 2, 3, 6, True)  # Magic's positional order, no seed
    for key, answer in sample.queries:
        chain = answer.split(" = ")
        assert len(chain) == 3  # H2 = H3 = H4
        # Each hop is a prompt line: key -> chain[0] -> chain[1] -> 'chain[2]'.
        assert f"{key} = {chain[0]}\n" in sample.prompt + "\n"
        assert f"{chain[1]} = '{chain[2]}'" in sample.prompt


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = MultiHopEval.make_one(4000, 3, 2, 16, False, seed=11)
    b = MultiHopEval.make_one(4000, 3, 2, 16, False, seed=11)
    c = MultiHopEval.make_one(4000, 3, 2, 16, False, seed=12)
    assert a == b
    assert a.prompt != c.prompt and a.targets != c.targets


def test_unseeded_make_one_follows_pythons_random_state():
    random.seed(99)
    a = MultiHopEval.make_one(2000, 2, 1, 8, False)
    random.seed(99)
    b = MultiHopEval.make_one(2000, 2, 1, 8, False)
    c = MultiHopEval.make_one(2000, 2, 1, 8, False)
    assert a.seed == b.seed and a.prompt == b.prompt
    assert c.seed != a.seed and c.prompt != a.prompt
    assert pyhashhop.generate(2000, 2, 1, 8, False, a.seed) == a  # the kept seed rebuilds the sample


def test_hashes_are_unique_even_when_short():
    # 2-letter hashes: 52^2 = 2704 possible; a 1-hop problem of 400 chains draws 800 of them.
    sample = pyhashhop.generate(400 * 7, 5, 1, 2, False, 3)
    hashes = [h for line in sample.prompt.split("\n") for h in line.replace("'", "").split(" = ")]
    assert len(hashes) == 800 and len(set(hashes)) == 800


def test_solve_then_score_is_perfect_and_a_wrong_answer_counts():
    samples = [pyhashhop.generate(3000, 4, hops, 8, cot, seed) for seed, (hops, cot) in
               enumerate([(1, False), (2, True), (3, False), (4, True)])]
    solved = [pyhashhop.solve(s.prompt, s.completion) for s in samples]
    assert solved == [s.completion for s in samples]
    report = pyhashhop.score(samples, solved)
    assert report["overall"]["queries"] == 16 and report["overall"]["exact_rate"] == 1.0
    assert set(report["by_hops"]) == {"1", "2", "3", "4"} and set(report["by_cot"]) == {"True", "False"}

    # One query of the CoT sample wrong in its middle hash only: not exact, but the final hash is right.
    key, answer = samples[1].queries[0]
    parts = answer.split(" = ")
    wrong = samples[1].completion.replace(f"{key} = '{answer}'", f"{key} = '{'x' * len(parts[0])} = {parts[1]}'")
    report = pyhashhop.score(samples, [solved[0], wrong, solved[2], solved[3]])
    assert report["overall"]["exact"] == 15 and report["overall"]["final_hash"] == 16
    assert report["by_hops"]["2"]["exact_rate"] == 0.75


def test_bad_arguments_name_magics_fields():
    with pytest.raises(ValueError, match="num_queries"):
        pyhashhop.generate(100, 50, 1, 8, False, 0)  # more queries than chains
    with pytest.raises(ValueError, match="hops"):
        pyhashhop.generate(100, 1, 0, 8, False, 0)
    with pytest.raises(ValueError, match="hash_pair_str_length"):
        pyhashhop.generate(100, 1, 1, 0, False, 0)
    with pytest.raises(TypeError, match="n_chars_problem"):
        pyhashhop.generate(100.0, 1, 1, 8, False, 0)
    with pytest.raises(pyhashhop.FormatError):
        pyhashhop.parse_completion("not a completion")
