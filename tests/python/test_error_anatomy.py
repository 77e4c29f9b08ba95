# Tests of scripts/error-anatomy.py on a real generated sample with hand-made wrong answers, one of each kind.
# Run: PYHASHHOP_TEST_STRICT=1 python -m pytest -q tests/python/test_error_anatomy.py (make test does).
import json
import pathlib
import subprocess
import sys

from pyhashhop import MultiHopEval

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "error-anatomy.py"


def test_each_kind_of_wrong_answer_is_named(tmp_path):
    sample = MultiHopEval.make_one(n_chars_problem=2000, num_queries=7, hops=1, hash_pair_str_length=8,
                                   chain_of_thought=False, seed=11)
    prompt_pairs = [line.split(" = ") for line in sample.prompt.split("\n") if " = '" in line]
    lines = [line for line in sample.completion.split("\n") if " = '" in line]
    queries = [line.split(" = ")[0] for line in lines]
    truths = [line.split("'")[1] for line in lines]
    values = [v.strip("'") for _, v in prompt_pairs]
    other_value = next(v for v in values if v not in truths)
    near_other = next(v for v in values if v not in truths and v != other_value)
    near_other = ("a" if near_other[0] != "a" else "b") + near_other[1:]  # its first byte wrong, the rest copied
    slip = truths[1][:3] + ("a" if truths[1][3] != "a" else "b") + truths[1][4:]
    answers = [truths[0], slip, other_value, "zzzzzzzz", None, near_other, truths[6] + "x"]  # [4]: no answer line
    completion = "COMPLETION:\n" + "".join(f"{q} = '{a}'\n" for q, a in zip(queries, answers) if a is not None)
    data, predictions = tmp_path / "d.jsonl", tmp_path / "p.jsonl"
    data.write_text(json.dumps({"prompt": sample.prompt, "completion": sample.completion}) + "\n")
    predictions.write_text(json.dumps({"completion": completion}) + "\n")
    out = json.loads(subprocess.run([sys.executable, str(SCRIPT), str(data), str(predictions), "--json"],
                                    check=True, capture_output=True, text=True).stdout)
    assert out["queries"] == 7
    assert out["kinds"] == {"right": 1, "right value, 1-2 bytes wrong (copy slip)": 1, "another key's value": 1,
                            "no value of the prompt": 1, "no answer line": 1, "another value with 1-2 bytes wrong": 1,
                            "wrong length": 1}
    assert out["right_leading_bytes"]["8"] == 2 and out["right_leading_bytes"]["3"] >= 1


def test_files_of_different_lengths_are_refused(tmp_path):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_text('{"prompt": "", "completion": ""}\n')
    two.write_text('{"completion": ""}\n{"completion": ""}\n')
    run = subprocess.run([sys.executable, str(SCRIPT), str(one), str(two)], capture_output=True, text=True)
    assert run.returncode != 0 and "not the same number of records" in run.stderr


def test_a_bad_line_is_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "", "completion": ""}\nnot json\n')
    run = subprocess.run([sys.executable, str(SCRIPT), str(bad), str(bad)], capture_output=True, text=True)
    assert run.returncode != 0 and f"{bad}:2: not JSON" in run.stderr
