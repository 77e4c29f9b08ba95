#!/usr/bin/env python3
"""Plots a training run's metrics.jsonl (loss and teacher-forced exact match against step) to an SVG.

Run: scripts/plot-metrics.py runs/h100/metrics.jsonl docs/results/model-h100-curve.svg  (needs matplotlib)
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
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    steps = [r["step"] + 1 for r in rows]
    fig, loss_axis = plt.subplots(figsize=(7, 3.5))
    loss_axis.semilogy(steps, [r["loss"] for r in rows], color="tab:red", label="loss (answer bytes)")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss", color="tab:red")
    exact_axis = loss_axis.twinx()
    exact_axis.plot(steps, [r["exact"] for r in rows], color="tab:blue", label="exact match (teacher-forced)")
    exact_axis.set_ylabel("exact match", color="tab:blue")
    exact_axis.set_ylim(0, 1.02)
    # Curriculum stage changes show as the jumps; mark them.
    for previous, current in zip(rows, rows[1:]):
        if current["stage_from"] != previous["stage_from"]:
            loss_axis.axvline(current["stage_from"], color="gray", linestyle=":")
    loss_axis.set_title(sys.argv[1])
    fig.tight_layout()
    fig.savefig(sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
