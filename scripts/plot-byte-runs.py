#!/usr/bin/env python3
"""Plots byte-level model runs (metrics.jsonl from `hashhop train --config bytes-*`): answer-byte loss, first-byte
accuracy and greedy exact match against step, one line per run, to an SVG or PNG; when any run logs them, also the
share of positions its hash gates keep, its exact match at 2 hops without CoT (the composition) and the share of
its hop block's weight on the query's chain lines (hop_supervision) and the contrast block's weight on the query's line
with the batch's other prompts' keys in (match_contrast).

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
    runs = []
    for spec in sys.argv[2:]:
        path, _, label = spec.partition("=")
        runs.append((path, label, [json.loads(line) for line in open(path) if line.strip()]))
    kept = any(r.get("kept_share") is not None for _, _, rows in runs for r in rows)
    composed = any("2" in (r.get("exact_by_hops") or {}) for _, _, rows in runs for r in rows)
    hop_lines = any(r.get("hop_line_weight") is not None for _, _, rows in runs for r in rows)
    matched = any(r.get("match_weight") is not None for _, _, rows in runs for r in rows)
    panels = 3 + kept + composed + hop_lines + matched
    fig, axes = plt.subplots(1, panels, figsize=(5.7 * panels, 4.5), sharex=True)
    loss_ax, first_ax, exact_ax = axes[:3]
    extra = list(axes[3:])
    kept_ax = extra.pop(0) if kept else None
    composed_ax = extra.pop(0) if composed else None
    hop_ax = extra.pop(0) if hop_lines else None
    match_ax = extra.pop(0) if matched else None
    for i, (path, label, rows) in enumerate(runs):
        color = f"C{i % 10}"  # one colour per run in every panel, also where a run has no exact line
        steps = [r["step"] + 1 for r in rows]
        label = label or path.rsplit("/", 1)[-1].removesuffix(".jsonl")
        loss_ax.plot(steps, [r["loss"] for r in rows], label=label, color=color)
        first_ax.plot(steps, [r["first_byte"] for r in rows], label=label, color=color)
        if all("exact" in r for r in rows):  # the PyTorch twin (init-reference.py) logs no exact match
            exact_ax.plot(steps, [r["exact"] for r in rows], label=label, color=color)
        if kept_ax is not None and any(r.get("kept_share") is not None for r in rows):
            kept_ax.plot([s for s, r in zip(steps, rows) if r.get("kept_share") is not None],
                         [r["kept_share"] for r in rows if r.get("kept_share") is not None], label=label, color=color)
        if composed_ax is not None and any("2" in (r.get("exact_by_hops") or {}) for r in rows):
            pairs = [(s, r["exact_by_hops"]["2"]) for s, r in zip(steps, rows) if "2" in (r.get("exact_by_hops") or {})]
            composed_ax.plot([p[0] for p in pairs], [p[1] for p in pairs], label=label, color=color)
        if hop_ax is not None and any(r.get("hop_line_weight") is not None for r in rows):
            pairs = [(s, r["hop_line_weight"]) for s, r in zip(steps, rows) if r.get("hop_line_weight") is not None]
            hop_ax.plot([p[0] for p in pairs], [p[1] for p in pairs], label=label, color=color)
        if match_ax is not None and any(r.get("match_weight") is not None for r in rows):
            pairs = [(s, r["match_weight"]) for s, r in zip(steps, rows) if r.get("match_weight") is not None]
            match_ax.plot([p[0] for p in pairs], [p[1] for p in pairs], label=label, color=color)
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
    if kept_ax is not None:
        kept_ax.set_title("share of positions the hash gates keep")
    if composed_ax is not None:
        composed_ax.set_title("exact at 2 hops without CoT")
    if hop_ax is not None:
        hop_ax.set_title("hop weight on the chain's lines")
    if match_ax is not None:
        match_ax.set_title("lookup weight on the line, all prompts' keys in")
    for ax in [first_ax, exact_ax] + [a for a in (kept_ax, composed_ax, hop_ax, match_ax) if a is not None]:
        ax.set_xlabel("step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    first_ax.legend(fontsize=8, loc="upper left")  # every run has a first-byte line; not every one an exact line
    fig.tight_layout()
    fig.savefig(sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
