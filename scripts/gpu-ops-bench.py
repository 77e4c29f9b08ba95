#!/usr/bin/env python3
# Decode latency of torch.ops.hashhop.* on CUDA against torch SDPA (flash and cuDNN backends) in the same process: CUDA events, warmup, median.
# Run on the GPU machine: python3 scripts/gpu-ops-bench.py --lib build-gpu/libhashhop_ops.so --sizes 65536 1048576 --batch 1 8 --out ops-bench.json
"""One decode step (one query per head) over n cached tokens, bf16, head dim 128, grouped query heads.

The ops have no batch dimension yet: a batch of b sequences is b * heads independent heads, which is
exactly what the kernels compute, so batch b runs as heads_q = b * heads_q, heads_kv = b * heads_kv.
SDPA gets [b, heads, 1 | n, dim] with enable_gqa (or K/V repeated per query head where a backend refuses
GQA; the table says so). What each row times:

* signature: signature_attention (Hamming scan + top-k select + sparse decode) over cached signatures;
* index: index_attention, which builds the hash index over all n keys on every call (no persistent cache
  in the op API yet), then looks up and attends: build + lookup + attend;
* bucket: bucket_attention with LSH (projects all n keys, sorts, attends to the query's bucket);
* sdpa-flash / sdpa-cudnn: dense attention over all n keys.

Configurations whose K/V (plus signatures) do not fit in --memory-fraction of the GPU are skipped.
"""
import argparse
import json
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_ms(call, warmup, reps):
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


def signatures(ops, x, planes, chunk=1 << 22):
    """Packed 64-bit signatures [heads, n, 1] of x @ planes, in row chunks (a float32 copy of a 16M-key cache would not fit)."""
    rows = x.reshape(-1, x.shape[-1])
    words = [ops.pack_signatures(rows[i:i + chunk].float() @ planes) for i in range(0, rows.shape[0], chunk)]
    return torch.cat(words).reshape(x.shape[0], x.shape[1], 1)


def sdpa_call(backend, q, k, v, scale):
    """A closure running SDPA with one backend, and a note: GQA natively or K/V repeated per query head."""
    def native():
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=True)
    try:
        native()
        return native, "gqa"
    except RuntimeError:
        group = q.shape[1] // k.shape[1]
        kr, vr = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)

        def repeated():
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, kr, vr, scale=scale)
        repeated()
        return repeated, "kv repeated"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lib", default="build-gpu/libhashhop_ops.so", help="libhashhop_ops.so built with HASHHOP_TORCH_CUDA=ON")
    parser.add_argument("--sizes", type=int, nargs="+", default=[65536, 262144, 1048576], help="cached tokens per sequence")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--heads-q", type=int, default=8)
    parser.add_argument("--heads-kv", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128, choices=[64, 128])
    parser.add_argument("--top-k", type=int, default=2048, help="signature keys kept by similarity (plus sinks and window)")
    parser.add_argument("--sinks", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--bucket-bits", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--memory-fraction", type=float, default=0.6, help="skip sizes whose caches exceed this share of GPU memory")
    parser.add_argument("--ops", nargs="+", default=["signature", "index", "bucket", "sdpa-flash", "sdpa-cudnn"])
    parser.add_argument("--out", default="ops-bench.json", help="JSON results path")
    args = parser.parse_args()

    if not torch.cuda.is_available():
        sys.exit("gpu-ops-bench: needs a CUDA device")
    torch.ops.load_library(args.lib)
    ops = torch.ops.hashhop
    device = torch.device("cuda")
    total_memory = torch.cuda.get_device_properties(device).total_memory
    gpu = torch.cuda.get_device_name(device)
    scale = args.dim ** -0.5
    results = []
    for n in args.sizes:
        for batch in args.batch:
            hq, hkv = batch * args.heads_q, batch * args.heads_kv
            cache_bytes = hkv * n * (2 * args.dim * 2 + 8) + hkv * n * 4 * 4  # K, V, signatures; bucket/index scratch
            row = {"n_keys": n, "batch": batch, "heads_q": args.heads_q, "heads_kv": args.heads_kv, "dim": args.dim,
                   "dtype": "bf16", "gpu": gpu, "ms": {}, "notes": {}}
            if cache_bytes > args.memory_fraction * total_memory:
                row["skipped"] = f"caches need {cache_bytes / 2**30:.1f} GiB"
                results.append(row)
                print(f"n={n} batch={batch}: skipped ({row['skipped']})", file=sys.stderr)
                continue
            torch.manual_seed(n + batch)
            k = torch.randn(hkv, n, args.dim, device=device, dtype=torch.bfloat16)
            v = torch.randn(hkv, n, args.dim, device=device, dtype=torch.bfloat16)
            q = torch.randn(hq, 1, args.dim, device=device, dtype=torch.bfloat16)
            planes = torch.randn(args.dim, 64, device=device)
            ks = signatures(ops, k, planes)
            qs = signatures(ops, q, planes)
            calls = {
                "signature": lambda: ops.signature_attention(q, k, v, qs, ks, 64, args.sinks, args.window, args.top_k, 0.0, False, scale),
                "index": lambda: ops.index_attention(q, k, v, qs[..., 0], ks[..., 0], 64, 4, 16, 0, False, scale),
                "bucket": lambda: ops.bucket_attention(q, k, v, args.bucket_bits, 1, "lsh", 0, False, scale),
            }
            q4, k4, v4 = (x.reshape(batch, -1, x.shape[1], args.dim) for x in (q, k, v))
            for name, backend in (("sdpa-flash", SDPBackend.FLASH_ATTENTION), ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION)):
                if name in args.ops:
                    try:
                        calls[name], row["notes"][name] = sdpa_call(backend, q4, k4, v4, scale)
                    except RuntimeError as e:
                        row["notes"][name] = "unavailable: " + str(e).splitlines()[0][:120]
            for name in args.ops:
                if name not in calls:
                    continue
                with torch.inference_mode():
                    row["ms"][name] = time_ms(calls[name], args.warmup, args.reps)
            del k, v, ks, calls
            torch.cuda.empty_cache()
            results.append(row)
            print(f"n={n} batch={batch}: " + ", ".join(f"{o} {t:.3f} ms" for o, t in row["ms"].items()), file=sys.stderr)

    columns = [o for o in args.ops]
    print(f"\nDecode step, bf16, dim {args.dim}, heads {args.heads_q}/{args.heads_kv} per sequence, {gpu}; median of {args.reps} after {args.warmup} warmup (ms; x = SDPA flash / op)\n")
    print("| n keys | batch | " + " | ".join(columns) + " |")
    print("|---:|---:|" + "---:|" * len(columns))
    for row in results:
        if "skipped" in row:
            print(f"| {row['n_keys']} | {row['batch']} | " + " | ".join("skipped" for _ in columns) + " |")
            continue
        flash = row["ms"].get("sdpa-flash")
        cells = []
        for o in columns:
            t = row["ms"].get(o)
            if t is None:
                cells.append(row["notes"].get(o, "n/a"))
            elif flash and not o.startswith("sdpa"):
                cells.append(f"{t:.3f} ({flash / t:.1f}x)")
            else:
                cells.append(f"{t:.3f}" + (" (kv repeated)" if row["notes"].get(o) == "kv repeated" else ""))
        print(f"| {row['n_keys']} | {row['batch']} | " + " | ".join(cells) + " |")
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "torch": torch.__version__, "gpu": gpu, "results": results}, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
