#!/usr/bin/env python3
"""Plots byte-level model runs (metrics.jsonl from `hashhop train --config bytes-*`): answer-byte loss, first-byte
accuracy and greedy exact match against step, one line per run, to an SVG or PNG.

Run: scripts/plot-byte-runs.py OUT.svg RUN.jsonl[=LABEL] ...   (needs matplotlib)
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    fig, (loss_ax, first_ax, exact_ax) = plt.subplots(1, 3, figsize=(17, 4.5), sharex=True)
    for i, spec in enumerate(sys.argv[2:]):
        path, _, label = spec.partition("=")
        color = f"C{i % 10}"  # one colour per run in every panel, also where a run has no exact line
        rows = [json.loads(line) for line in open(path) if line.strip()]
        steps = [r["step"] + 1 for r in rows]
        label = label or path.rsplit("/", 1)[-1].removesuffix(".jsonl")
        loss_ax.plot(steps, [r["loss"] for r in rows], label=label, color=color)
        first_ax.plot(steps, [r["first_byte"] for r in rows], label=label, color=color)
        if all("exact" in r for r in rows):  # the PyTorch twin (init-reference.py) logs no exact match
            exact_ax.plot(steps, [r["exact"] for r in rows], label=label, color=color)
    # Chance for the first answer byte: one of 52 letters.
    first_ax.axhline(1 / 52, color="grey", linestyle=":", linewidth=1)
    first_ax.set_title("first answer byte (the lookup itself)")
    # The plateau of a model that predicts only the closing quote after 8 letters: 1/9 of the bytes right,
    # the rest at ln 52 (a letter) — where every from-scratch run with the 0.02 init stopped.
    loss_ax.axhline(8 / 9 * 3.951, color="grey", linestyle=":", linewidth=1)
    loss_ax.set_title("answer-byte loss (nats)")
    loss_ax.set_xlabel("step")
    loss_ax.grid(alpha=0.3)
    exact_ax.set_title("whole answer right (= greedy exact match)")
    for ax in (first_ax, exact_ax):
        ax.set_xlabel("step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    first_ax.legend(fontsize=8, loc="upper left")  # every run has a first-byte line; not every one an exact line
    fig.tight_layout()
    fig.savefig(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
