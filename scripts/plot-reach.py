#!/usr/bin/env python3
"""Plots exact match against prompt length, one line per model, from a JSON file of
{"models": {LABEL: [[chars, exact, queries], ...]}} (e.g. docs/results/bytes/run18-reach.json), log-scaled length.

Run: scripts/plot-reach.py REACH.json OUT.png   (needs matplotlib)
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    data = json.load(open(sys.argv[1]))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (label, points) in enumerate(data["models"].items()):
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label, color=f"C{i % 10}")
        for chars, exact, queries in points:  # how many answers stand behind each point
            ax.annotate(str(queries), (chars, exact), textcoords="offset points", xytext=(4, 4), fontsize=7, color=f"C{i % 10}")
    ax.axvline(32000, color="grey", linestyle=":", linewidth=1)
    ax.text(32000, 1.02, " longest training prompt", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.08)
    ax.set_xlabel("prompt characters")
    ax.set_ylabel("1-hop exact match")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
