#!/usr/bin/env python3
"""Plots byte-level model runs (metrics.jsonl from `hashhop train --config bytes-*`): first-byte accuracy and
greedy exact match against step, one line per run, to an SVG or PNG.

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
    fig, (first_ax, exact_ax) = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    for spec in sys.argv[2:]:
        path, _, label = spec.partition("=")
        rows = [json.loads(line) for line in open(path) if line.strip()]
        steps = [r["step"] + 1 for r in rows]
        label = label or path.rsplit("/", 1)[-1].removesuffix(".jsonl")
        first_ax.plot(steps, [r["first_byte"] for r in rows], label=label)
        exact_ax.plot(steps, [r["exact"] for r in rows], label=label)
    # Chance for the first answer byte: one of 52 letters.
    first_ax.axhline(1 / 52, color="grey", linestyle=":", linewidth=1)
    first_ax.set_title("first answer byte (the lookup itself)")
    exact_ax.set_title("whole answer right (= greedy exact match)")
    for ax in (first_ax, exact_ax):
        ax.set_xlabel("step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    exact_ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
