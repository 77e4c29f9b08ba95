# GPU benchmark of pyhashhop.ops on CUDA tensors against torch SDPA (flash, cuDNN) in the same process: CUDA events, warm-up, median.
# Run on the GPU machine: python -m pyhashhop.ops_bench --sizes 65536 1048576 --batch 1 8 --cache --out ops-bench.json
"""Decode latency of the hash-attention ops, and the KV-cache decode API, against dense SDPA.

Every row is one decode step (one query per head) over n cached tokens, bf16, random data:

* signature: ``signature_attention`` (Hamming scan + top-k select + sparse decode) over cached signatures;
* index: ``index_attention``, which builds the hash index over all n keys on every call, then looks up
  and attends (build + lookup + attend);
* bucket: ``bucket_attention`` with LSH (projects all n keys, sorts, attends to the query's bucket);
* sdpa-flash / sdpa-cudnn: dense attention over all n keys.

A batch of b sequences runs as b * heads independent heads through the ops (what the kernels compute).
``--top-k-fraction`` sets k = n * fraction instead of ``--top-k`` (attn-bench's decode uses 1/32, 8/8 heads,
no sinks or window, batch 1: ``--heads-q 8 --heads-kv 8 --top-k-fraction 0.03125 --sinks 0 --window 0``).

``--cache`` adds the decode API: a ``SignatureKVCache`` of ``--cache-batch`` sequences of ``--cache-tokens``,
filled by ``append`` in chunks, then one ``decode`` step for every sequence, against SDPA over the very same
cache tensors; tokens per second = sequences / step time. ``--profile`` records, per op, the copies and syncs a
profiler sees inside one call beyond those around an empty call (both must be zero); ``--graph`` also times
each op replayed from a captured CUDA graph (no host launch overhead). Configurations whose tensors do not
fit in ``--memory-fraction`` of the GPU are skipped and say so.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from . import ops

SYNCS = ("cudaDeviceSynchronize", "cudaStreamSynchronize")
COPIES = ("Memcpy HtoD", "Memcpy DtoH", "cudaMemcpy")


def time_ms(call: Callable[[], object], warmup: int, reps: int) -> float:
    """Median CUDA-event time of one call, in ms; an SDPA closure runs under its backend (see sdpa_call)."""
    backend = getattr(call, "backend", None)
    with sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext():
        for _ in range(warmup):
            call()
        start = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        end = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for s, e in zip(start, end):
            s.record()
            call()
            e.record()
        torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(start, end))


def back_to_back_ms(call: Callable[[], object], warmup: int, reps: int) -> float:
    """Mean time of one call issued back to back, as a decode loop issues its steps: two events around `reps`
    calls. Where the host is slower than the GPU this is the host's time per call; time_ms's per-call events
    add their own two Python calls to it."""
    backend = getattr(call, "backend", None)
    with sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext():
        for _ in range(warmup):
            call()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            call()
        end.record()
        torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def _profiled(call: Callable[[], object]) -> List[str]:
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize()
    return [e.name for e in prof.events()]


def _counts(names: List[str]) -> Dict[str, int]:
    return {"syncs": sum(n in SYNCS for n in names), "copies": sum(any(n.startswith(c) for c in COPIES) for n in names),
            "kernels": len({n for n in names if "kernel" in n})}


def profile_call(call: Callable[[], object]) -> Dict[str, int]:
    """Copies, syncs and distinct kernels the profiler sees during one call, less what it sees around a call that
    does nothing (the benchmark's own trailing sync and the profiler's)."""
    empty, seen = _counts(_profiled(lambda: None)), _counts(_profiled(call))
    return {"syncs": seen["syncs"] - empty["syncs"], "copies": seen["copies"] - empty["copies"], "kernels": seen["kernels"]}


def graphed(call: Callable[[], object]) -> Callable[[], object]:
    """The call captured once in a CUDA graph; replaying it runs the same kernels without host launch overhead
    (what a serving loop with CUDA graphs pays, and what attn-bench's in-process timing comes close to)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            call()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call()
    return graph.replay


def signatures(x: torch.Tensor, planes: torch.Tensor, chunk: int = 1 << 22) -> torch.Tensor:
    """Packed 64-bit signatures [heads, n, 1] of x @ planes, in row chunks (a float32 copy of a 16M-key cache would not fit)."""
    rows = x.reshape(-1, x.shape[-1])
    words = [ops.pack_signatures(rows[i:i + chunk].float() @ planes) for i in range(0, rows.shape[0], chunk)]
    return torch.cat(words).reshape(x.shape[0], x.shape[1], 1)


def sdpa_call(backend, q, k, v, scale):
    """A closure running SDPA, and a note: GQA natively or K/V repeated per query head. The closure carries
    its backend (``.backend``): time_ms selects it once around the timed loop, so the Python context manager
    that selects a backend is not timed as part of every SDPA call."""
    def native():
        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=True)
    try:
        with sdpa_kernel([backend]):
            native()
        call, note = native, "gqa"
    except RuntimeError:
        group = q.shape[1] // k.shape[1]
        kr, vr = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)

        def repeated():
            return F.scaled_dot_product_attention(q, kr, vr, scale=scale)
        with sdpa_kernel([backend]):
            repeated()
        call, note = repeated, "kv repeated"
    call.backend = backend
    return call, note


def add_sdpa(calls, notes, wanted, q4, k4, v4, scale):
    for name, backend in (("sdpa-flash", SDPBackend.FLASH_ATTENTION), ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION)):
        if name in wanted:
            try:
                calls[name], notes[name] = sdpa_call(backend, q4, k4, v4, scale)
            except RuntimeError as e:
                notes[name] = "unavailable: " + str(e).splitlines()[0][:120]


def top_k_of(n: int, args) -> int:
    return max(1, int(n * args.top_k_fraction)) if args.top_k_fraction > 0 else args.top_k


def op_rows(args, device, total_memory) -> List[dict]:
    scale = args.dim ** -0.5
    results = []
    for n in args.sizes:
        for batch in args.batch:
            hq, hkv = batch * args.heads_q, batch * args.heads_kv
            need = hkv * n * (2 * args.dim * 2 + 8) + hkv * n * 4 * 4  # K, V, signatures; bucket/index scratch
            row = {"n_keys": n, "batch": batch, "heads_q": args.heads_q, "heads_kv": args.heads_kv, "dim": args.dim,
                   "top_k": top_k_of(n, args), "sinks": args.sinks, "window": args.window, "dtype": "bf16",
                   "ms": {}, "back_to_back_ms": {}, "graph_ms": {}, "notes": {}, "profile": {}}
            if need > args.memory_fraction * total_memory:
                row["skipped"] = f"tensors need {need / 2**30:.1f} GiB"
                results.append(row)
                print(f"n={n} batch={batch}: skipped ({row['skipped']})", file=sys.stderr)
                continue
            torch.manual_seed(n + batch)
            k = torch.randn(hkv, n, args.dim, device=device, dtype=torch.bfloat16)
            v = torch.randn(hkv, n, args.dim, device=device, dtype=torch.bfloat16)
            q = torch.randn(hq, 1, args.dim, device=device, dtype=torch.bfloat16)
            planes = torch.randn(args.dim, 64, device=device)
            ks, qs = signatures(k, planes), signatures(q, planes)
            top_k = row["top_k"]
            calls = {
                "signature": lambda: ops.signature_attention(q, k, v, qs, ks, 64, args.sinks, args.window, top_k, 0.0,
                                                             False, scale),
                "index": lambda: ops.index_attention(q, k, v, qs[..., 0], ks[..., 0], 64, 4, 16, 0, False, scale),
                "bucket": lambda: ops.bucket_attention(q, k, v, args.bucket_bits, 1, "lsh", 0, False, scale),
            }
            q4, k4, v4 = (x.reshape(batch, -1, x.shape[1], args.dim) for x in (q, k, v))
            add_sdpa(calls, row["notes"], args.ops, q4, k4, v4, scale)
            for name in args.ops:
                if name in calls:
                    with torch.inference_mode():
                        row["ms"][name] = time_ms(calls[name], args.warmup, args.reps)
                        row["back_to_back_ms"][name] = back_to_back_ms(calls[name], args.warmup, args.reps)
                        if args.profile and not name.startswith("sdpa"):
                            row["profile"][name] = profile_call(calls[name])
                        if args.graph and not name.startswith("sdpa"):
                            try:
                                row["graph_ms"][name] = time_ms(graphed(calls[name]), args.warmup, args.reps)
                            except RuntimeError as e:
                                row["notes"][name + " graph"] = "capture failed: " + str(e).splitlines()[0][:120]
            del k, v, ks, calls, q4, k4, v4
            torch.cuda.empty_cache()
            results.append(row)
            print(f"n={n} batch={batch}: " + ", ".join(f"{o} {t:.3f} ms" for o, t in row["ms"].items()), file=sys.stderr)
    return results


def cache_row(args, device, total_memory) -> dict:
    """The decode API: fill a SignatureKVCache by appends, then time one decode step for every sequence."""
    b, n, hkv, hq, dim = args.cache_batch, args.cache_tokens, args.heads_kv, args.heads_q, args.dim
    top_k = top_k_of(n, args)
    row = {"batch": b, "tokens_per_sequence": n, "heads_q": hq, "heads_kv": hkv, "dim": dim, "top_k": top_k,
           "sinks": args.sinks, "window": args.window, "dtype": "bf16", "ms": {}, "graph_ms": {}, "notes": {}, "profile": {}}
    need = b * hkv * n * (2 * dim * 2 + 8) + b * hkv * args.append_chunk * (2 * dim * 2 + 64 * 4) * 2
    if need > args.memory_fraction * total_memory:
        row["skipped"] = f"cache needs {need / 2**30:.1f} GiB"
        return row
    torch.manual_seed(7)
    cache = ops.SignatureKVCache(b, hkv, n, dim, bits=64, dtype=torch.bfloat16, device=device)
    planes = torch.randn(dim, 64, device=device)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    append_ms = 0.0
    dropped_total = 0
    with torch.inference_mode():
        for at in range(0, n, args.append_chunk):
            t = min(args.append_chunk, n - at)
            k = torch.randn(b, hkv, t, dim, device=device, dtype=torch.bfloat16)
            v = torch.randn_like(k)
            logits = k.float() @ planes  # what a learned phi_k would give: [b, hkv, t, 64]
            start.record()
            dropped = cache.append(k, v, logits)
            stop.record()
            torch.cuda.synchronize()
            append_ms += start.elapsed_time(stop)
            dropped_total += int(dropped.sum())
            del k, v, logits
        assert dropped_total == 0 and int(cache.lengths.min()) == n, "cache.append: the cache did not fill"
        row["append_ms_total"] = append_ms
        row["append_gb_per_s"] = b * hkv * n * (2 * dim * 2 + 64 * 4) / append_ms / 1e6  # read: K, V, fp32 logits
        q = torch.randn(b, hq, dim, device=device, dtype=torch.bfloat16)
        q_logits = q.float() @ planes
        q_signatures = ops.pack_signatures(q_logits.reshape(b * hq, 64)).view(b, hq, 1)
        scale = dim ** -0.5
        calls = {"cache-decode": lambda: ops.signature_decode(q, q_signatures, cache.k, cache.v, cache.signatures,
                                                              cache.lengths, 64, args.sinks, args.window, top_k, 0.0,
                                                              scale)}
        # One new token per sequence, as a serving loop appends before each step (timed on a copy of lengths).
        k1 = torch.randn(b, hkv, 1, dim, device=device, dtype=torch.bfloat16)
        l1 = k1.float() @ planes
        lengths, before = cache.lengths.clone(), cache.lengths - 1

        def append_one():  # includes one device copy resetting the lengths (a few microseconds)
            cache.lengths.copy_(before)
            return cache.append(k1, k1, l1)
        calls["cache-append-1"] = append_one
        add_sdpa(calls, row["notes"], ("sdpa-flash", "sdpa-cudnn"), q[:, :, None], cache.k, cache.v, scale)
        for name, call in calls.items():
            row["ms"][name] = time_ms(call, args.warmup, args.reps)
            if args.graph and name == "cache-decode":
                row["graph_ms"][name] = time_ms(graphed(call), args.warmup, args.reps)
        if args.profile:
            row["profile"]["cache-decode"] = profile_call(calls["cache-decode"])
            cache.lengths.copy_(before)  # the reset stays outside the profiled call
            row["profile"]["cache-append-1"] = profile_call(lambda: cache.append(k1, k1, l1))
        cache.lengths.copy_(lengths)
    for name, ms in row["ms"].items():
        if name != "cache-append-1":
            row.setdefault("tokens_per_s", {})[name] = b / (ms / 1e3)
    print(f"cache {b} x {n}: " + ", ".join(f"{o} {t:.3f} ms" for o, t in row["ms"].items()), file=sys.stderr)
    return row


def print_tables(args, gpu, results, cache):
    columns = list(args.ops)
    print(f"\nDecode step, bf16, dim {args.dim}, heads {args.heads_q}/{args.heads_kv} per sequence, sinks {args.sinks}, "
          f"window {args.window}, {gpu}; median of {args.reps} per-call event pairs after {args.warmup} warm-ups; back to back: the mean "
          f"over {args.reps} calls between two events (ms; x = SDPA flash / op)\n")
    print("| n keys | batch | top-k | " + " | ".join(columns) + " |")
    print("|---:|---:|---:|" + "---:|" * len(columns))
    for row in results:
        if "skipped" in row:
            print(f"| {row['n_keys']:,} | {row['batch']} | | " + " | ".join("skipped" for _ in columns) + " |")
            continue
        flash = row["ms"].get("sdpa-flash")
        cells = []
        for o in columns:
            t = row["ms"].get(o)
            if t is None:
                cells.append(row["notes"].get(o, "n/a"))
            elif flash and not o.startswith("sdpa"):
                graph, b2b = row["graph_ms"].get(o), row.get("back_to_back_ms", {}).get(o)
                cells.append(f"{t:.3f} ({flash / t:.1f}x)" + (f"; back to back {b2b:.3f}" if b2b else "") +
                             (f"; graph {graph:.3f} ({flash / graph:.1f}x)" if graph else ""))
            else:
                cells.append(f"{t:.3f}" + (" (kv repeated)" if row["notes"].get(o) == "kv repeated" else ""))
        print(f"| {row['n_keys']:,} | {row['batch']} | {row['top_k']:,} | " + " | ".join(cells) + " |")
    if cache:
        print(f"\nDecode API: {cache['batch']} sequences x {cache['tokens_per_sequence']:,} cached tokens, top-k "
              f"{cache.get('top_k')}, one step for every sequence\n")
        if "skipped" in cache:
            print(f"skipped: {cache['skipped']}")
            return
        print("| what | ms per step | tokens/s |\n|---|---:|---:|")
        for name, ms in cache["ms"].items():
            tps = cache.get("tokens_per_s", {}).get(name)
            print(f"| {name} | {ms:.3f} | {'' if tps is None else f'{tps:,.0f}'} |")
            if name in cache["graph_ms"]:
                g = cache["graph_ms"][name]
                print(f"| {name} (CUDA graph) | {g:.3f} | {cache['batch'] / (g / 1e3):,.0f} |")
        print(f"\nfilling by append: {cache['append_ms_total']:.1f} ms ({cache['append_gb_per_s']:.0f} GB/s of K, V and logits read)")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyhashhop.ops_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[65536, 262144, 1048576], help="cached tokens per sequence")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--heads-q", type=int, default=8)
    parser.add_argument("--heads-kv", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128, choices=[64, 128])
    parser.add_argument("--top-k", type=int, default=2048, help="signature keys kept by similarity (plus sinks and window)")
    parser.add_argument("--top-k-fraction", type=float, default=0.0, help="k = n * this instead of --top-k (0: off)")
    parser.add_argument("--sinks", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--bucket-bits", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--memory-fraction", type=float, default=0.6, help="skip sizes whose tensors exceed this share of GPU memory")
    parser.add_argument("--ops", nargs="+", default=["signature", "index", "bucket", "sdpa-flash", "sdpa-cudnn"])
    parser.add_argument("--cache", action="store_true", help="also benchmark the KV-cache decode API")
    parser.add_argument("--cache-batch", type=int, default=8)
    parser.add_argument("--cache-tokens", type=int, default=1 << 20)
    parser.add_argument("--append-chunk", type=int, default=1 << 16, help="rows per append while filling the cache")
    parser.add_argument("--profile", action="store_true", help="count copies and syncs inside one call of each op")
    parser.add_argument("--graph", action="store_true", help="also time each op replayed from a captured CUDA graph")
    parser.add_argument("--out", default="ops-bench.json", help="JSON results path")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("ops_bench: needs a CUDA device", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    total_memory = torch.cuda.get_device_properties(device).total_memory
    gpu = torch.cuda.get_device_name(device)
    results = op_rows(args, device, total_memory)
    cache = cache_row(args, device, total_memory) if args.cache else None
    print_tables(args, gpu, results, cache)
    meta = {"command": "python -m pyhashhop.ops_bench " + " ".join(sys.argv[1:] if argv is None else argv),
            "commit": commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "gpu": gpu,
            "torch": torch.__version__, "args": vars(args)}
    with open(args.out, "w") as f:
        json.dump({**meta, "results": results, "cache": cache}, f, indent=2)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
