#!/usr/bin/env python3
# Draws a `hashhop sweep` results JSON: accuracy heatmaps (context size x hops, CoT off and on) and latency
# against context size, with matplotlib. Run: `hashhop plot results.json -o fig.png` (or python3 scripts/plot_sweep.py IN OUT).
import json
import math
import os
import sys


def fail(message):
    print(f"hashhop plot: error: {message}", file=sys.stderr)
    sys.exit(1)


def human(n):  # 4000 -> "4K" (decimal, as the CLI's size suffixes)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale and n % (scale / 100) == 0:
            return f"{n / scale:g}{unit}"
    return str(n)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except OSError as e:
        fail(f"{path}: cannot read: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{path}:{e.lineno}: not valid JSON ({e.msg})")
    if not isinstance(results, dict) or results.get("format") != "hashhop-sweep/1":
        fail(f"{path}: field 'format': expected \"hashhop-sweep/1\" (a `hashhop sweep --out` file)")
    cells = results.get("cells")
    if not isinstance(cells, list) or not cells:
        fail(f"{path}: field 'cells': expected a non-empty list")
    for i, cell in enumerate(cells):
        for field, kind in (("n_chars", int), ("hops", int), ("cot", bool), ("exact_rate", (int, float)), ("latency_s", dict)):
            if not isinstance(cell.get(field), kind):
                fail(f"{path}: field 'cells[{i}].{field}': missing or of the wrong type")
    return results


def main(argv):
    if len(argv) != 3:
        fail("usage: plot_sweep.py RESULTS.json OUT.png|OUT.svg")
    in_path, out_path = argv[1], argv[2]
    ext = os.path.splitext(out_path)[1].lower().lstrip(".")
    if ext not in ("png", "svg", "pdf"):
        fail(f"-o {out_path}: expected a .png, .svg or .pdf file")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        fail("matplotlib is missing: install python3-matplotlib (scripts/setup.sh does)")
    results = load(in_path)
    cells = results["cells"]
    sizes = sorted({c["n_chars"] for c in cells})
    hops = sorted({c["hops"] for c in cells})
    by_key = {(c["n_chars"], c["hops"], c["cot"]): c for c in cells}

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), layout="constrained", gridspec_kw={"width_ratios": [1, 1, 1.2]})
    image = None
    for ax, cot in zip(axes[:2], (False, True)):
        grid = [[by_key[(s, h, cot)]["exact_rate"] * 100 if (s, h, cot) in by_key else math.nan for s in sizes] for h in hops]
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(len(sizes)), [human(s) for s in sizes])
        ax.set_yticks(range(len(hops)), [str(h) for h in hops])
        ax.set_xlabel("context size (characters)")
        ax.set_ylabel("hops")
        ax.set_title(f"exact match, CoT {'on' if cot else 'off'}")
        for y, h in enumerate(hops):
            for x, s in enumerate(sizes):
                cell = by_key.get((s, h, cot))
                text = "not run" if cell is None else f"{cell['exact_rate'] * 100:.0f}%"
                value = grid[y][x]
                ax.text(x, y, text, ha="center", va="center", fontsize=9,
                        color="black" if (not math.isnan(value) and value > 60) else "white")
    fig.colorbar(image, ax=axes[1], fraction=0.05, pad=0.03, label="exact match (%)")

    ax = axes[2]
    for cot in (False, True):
        for h in hops:
            points = [(s, by_key[(s, h, cot)]["latency_s"]["mean_per_record"]) for s in sizes if (s, h, cot) in by_key]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o" if cot else "s",
                        linestyle="-" if cot else "--", label=f"hops {h}, CoT {'on' if cot else 'off'}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [human(s) for s in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("context size (characters)")
    ax.set_ylabel("seconds per record (mean)")
    ax.set_title("answer latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)

    spec = results.get("spec", {})
    who = results.get("model") or results.get("answerer", "?")
    device = results.get("device", "")
    fig.suptitle(f"HashHop sweep: {who} {('on ' + device) if device else ''}, {spec.get('samples', '?')} samples x "
                 f"{spec.get('queries', '?')} queries per cell, hash length {spec.get('hash_len', '?')} "
                 f"({results.get('date', '')}, commit {results.get('commit', '?')})", fontsize=10)
    # Whole file or nothing: write a temporary beside the output, then rename it.
    temp = f"{out_path}.partial.{os.getpid()}"
    try:
        fig.savefig(temp, format=ext, dpi=100)
        os.replace(temp, out_path)
    except OSError as e:
        if os.path.exists(temp):
            os.remove(temp)
        fail(f"{out_path}: cannot write: {e.strerror}")


if __name__ == "__main__":
    main(sys.argv)
