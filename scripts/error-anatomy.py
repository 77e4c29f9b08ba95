#!/usr/bin/env python3
# What a model's wrong HashHop answers are: copy slips, another key's value, or neither (docs/learning-log.md 12).
# Run: scripts/error-anatomy.py DATA.jsonl PREDICTIONS.jsonl [--json]   (predictions: `hashhop eval --predictions`)
"""Classifies each query's first answered hash against the prompt's pairs.

A wrong-key lookup shows up as another line's value; if the wrong keys share more letters with the query key
than random keys do, the model's keys hold too few bits of the hash. A first byte that is wrong while the rest
copies another value shows that each byte is looked up anew until the copy takes over.
"""
import argparse
import collections
import json
import random
import re
import statistics
import sys

LINE = re.compile(r"^(\w+) = '(\w*)")


def pairs(text):
    """KEY -> first hash after `KEY = '`, for every line of that shape (prompt lines and answer lines)."""
    out = []
    for line in text.split("\n"):
        m = LINE.match(line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def same_position(a, b):
    return sum(x == y for x, y in zip(a, b))


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{number}: not JSON: {e.msg}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="HashHop JSONL with prompt and completion (ours or Magic's)")
    ap.add_argument("predictions", help="JSONL of predicted completions, one per data record, same order")
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = ap.parse_args()

    rng = random.Random(0)
    kinds = collections.Counter()
    leading = collections.Counter()  # answers by how many leading bytes are right
    wrong_key, random_key = [], []   # letters in the same position as the query key
    try:
        for number, (record, prediction) in enumerate(zip(read_jsonl(args.data), read_jsonl(args.predictions), strict=True), 1):
            classify(number, record, prediction, rng, kinds, leading, wrong_key, random_key)
    except ValueError as e:  # zip(strict=True): one file ran out first
        sys.exit(f"{args.data} and {args.predictions}: not the same number of records ({e})")
    report(args, kinds, leading, wrong_key, random_key)


def classify(number, record, prediction, rng, kinds, leading, wrong_key, random_key):
    """Adds one record's queries to the counts."""
    if "prompt" not in record or "completion" not in record or "completion" not in prediction:
        sys.exit(f"record {number}: needs prompt and completion (data) and completion (predictions)")
    prompt = pairs(record["prompt"])
    owner = {value: key for key, value in prompt}
    answered = dict(pairs(prediction["completion"]))
    for query, truth in pairs(record["completion"]):
        got = answered.get(query)
        leading[common_prefix(got or "", truth)] += 1
        others = [value for value in owner if value != truth and len(value) == len(got or "")]
        if got == truth:
            kinds["right"] += 1
        elif got is None:
            kinds["no answer line"] += 1
        elif len(got) != len(truth):
            kinds["wrong length"] += 1
        elif same_position(got, truth) >= len(truth) - 2:
            kinds["right value, 1-2 bytes wrong (copy slip)"] += 1
        elif got in owner:
            kinds["another key's value"] += 1
            wrong_key.append(same_position(query, owner[got]))
            other_keys = [key for key, _ in prompt if key != query]
            random_key += [same_position(query, rng.choice(other_keys)) for _ in range(64)]
        elif others and max(same_position(got, value) for value in others) >= len(got) - 2:
            kinds["another value with 1-2 bytes wrong"] += 1
        else:
            kinds["no value of the prompt"] += 1


def report(args, kinds, leading, wrong_key, random_key):
    total = sum(kinds.values())
    result = {"queries": total, "kinds": dict(kinds), "right_leading_bytes": dict(sorted(leading.items())),
              "wrong_key_same_position_letters": statistics.mean(wrong_key) if wrong_key else None,
              "random_key_same_position_letters": statistics.mean(random_key) if random_key else None}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{total} queries")
    for kind, count in kinds.most_common():
        print(f"  {count:6d}  {100 * count / max(total, 1):5.1f}%  {kind}")
    print("right leading bytes: " + ", ".join(f"{k}: {v}" for k, v in sorted(leading.items())))
    if wrong_key:
        print(f"letters in the same place as the query key: wrong keys {result['wrong_key_same_position_letters']:.2f},"
              f" random keys {result['random_key_same_position_letters']:.2f}")


if __name__ == "__main__":
    main()
