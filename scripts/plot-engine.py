#!/usr/bin/env python3
"""Plots `hashhop engine-bench --json` output: accuracy, time per query and memory against prompt length.

Run: scripts/plot-engine.py docs/results/engine-h100-cuda.json docs/results/engine-h100.svg  (needs matplotlib)
Dense rows marked projected are drawn dashed; they were scaled from the longest measured dense row.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def series(rows, hops, kind):
    if kind == "engine":
        picked = [r for r in rows if r["hops"] == hops and r["path"] == "engine"]
    elif kind == "dense":
        picked = [r for r in rows if r["hops"] == hops and r["path"] == "dense"]
    else:  # the measured dense rows continued by the projected ones
        picked = [r for r in rows if r["hops"] == hops and r["path"].startswith("dense")]
    return sorted(picked, key=lambda r: r["chars"])


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    data = json.load(open(sys.argv[1]))
    rows = data["rows"]
    hops_list = sorted({r["hops"] for r in rows})
    fig, (acc_ax, lat_ax, mem_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    colors = {h: c for h, c in zip(hops_list, ["tab:blue", "tab:orange", "tab:green", "tab:red"])}
    for hops in hops_list:
        color = colors[hops]
        engine = series(rows, hops, "engine")
        dense = series(rows, hops, "dense")
        dense_all = series(rows, hops, "dense+projected")
        x = [r["chars"] for r in engine]
        acc_ax.plot(x, [100 * r["exact"] / r["queries"] for r in engine], "o-", color=color, label=f"engine, {hops} hop")
        if dense:
            acc_ax.plot([r["chars"] for r in dense], [100 * r["exact"] / r["queries"] for r in dense], "s:",
                        color=color, label=f"dense, {hops} hop")
        lat_ax.plot(x, [r["query_ms_batch"] for r in engine], "o-", color=color, label=f"engine, {hops} hop (batch)")
        lat_ax.plot(x, [r["query_ms_single"] for r in engine], "^-", color=color, alpha=0.5,
                    label=f"engine, {hops} hop (single)")
        lat_ax.plot([r["chars"] for r in dense_all], [r["query_ms_batch"] for r in dense_all], "s--", color=color,
                    alpha=0.7, label=f"dense, {hops} hop (batch; dashed part projected)")
        mem_ax.plot(x, [r["memory_mb"] for r in engine], "o-", color=color, label=f"engine store, {hops} hop")
        mem_ax.plot([r["chars"] for r in dense_all], [r["memory_mb"] for r in dense_all], "s--", color=color,
                    alpha=0.7, label=f"dense memory, {hops} hop (projected past measured)")
    acc_ax.set_ylabel("exact match (%)")
    acc_ax.set_ylim(0, 102)
    lat_ax.set_ylabel("ms per query")
    lat_ax.set_yscale("log")
    lat_ax.axhline(10, color="gray", lw=0.8, ls=":")
    mem_ax.set_ylabel("memory (MB)")
    mem_ax.set_yscale("log")
    mem_ax.axhline(16000, color="gray", lw=0.8, ls=":")
    for ax in (acc_ax, lat_ax, mem_ax):
        ax.set_xscale("log")
        ax.set_xlabel("prompt characters")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"hashhop engine vs dense path ({data['model']}, {data['device']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
