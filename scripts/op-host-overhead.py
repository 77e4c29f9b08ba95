#!/usr/bin/env python3
# Host time of one eager signature_attention call against its event time, and a profiler table of where it goes
# (64K keys, 8 heads, dim 128, bf16, k = n/32). GPU machine: python3 scripts/op-host-overhead.py build-gpu/libhashhop_ops.so
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

parser = argparse.ArgumentParser(description=__doc__ or "Host time of one eager hashhop op call (CUDA).")
parser.add_argument("library", help="path to libhashhop_ops.so (built with HASHHOP_TORCH_CUDA=ON)")
torch.ops.load_library(parser.parse_args().library)
op = torch.ops.hashhop
dev = "cuda"
h, n, d = 8, 65536, 128
q = torch.randn(1, h, 1, d, device=dev, dtype=torch.bfloat16)
k = torch.randn(1, h, n, d, device=dev, dtype=torch.bfloat16); v = torch.randn_like(k)
planes = torch.randn(d, 64, device=dev)
qs = op.pack_signatures(q.reshape(-1, d).float() @ planes).reshape(1, h, 1, 1)
ks = op.pack_signatures(k.reshape(-1, d).float() @ planes).reshape(1, h, n, 1)
q3, k3, v3, qs3, ks3 = q[0], k[0], v[0], qs[0], ks[0]
top = n // 32
def sig4(): return op.signature_attention(q, k, v, qs, ks, 64, 0, 0, top, 0.0, False, d ** -0.5)
def sig3(): return op.signature_attention(q3, k3, v3, qs3, ks3, 64, 0, 0, top, 0.0, False, d ** -0.5)
sig_default = op.signature_attention.default  # the overload itself: no overload resolution per call
def sig3o(): return sig_default(q3, k3, v3, qs3, ks3, 64, 0, 0, top, 0.0, False, d ** -0.5)
def sdpa(): return F.scaled_dot_product_attention(q, k, v)
def empty(): return torch.empty(1, device=dev)
def host_us(fn, reps=300):
    for _ in range(20): fn()
    torch.cuda.synchronize()
    t = []
    for _ in range(reps):
        a = time.perf_counter(); fn(); t.append((time.perf_counter() - a) * 1e6)
        torch.cuda.synchronize()
    return statistics.median(t)
def gpu_ms(fn, reps=100):
    s = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]; e = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for a, b in zip(s, e): a.record(); fn(); b.record()
    torch.cuda.synchronize(); return statistics.median(a.elapsed_time(b) for a, b in zip(s, e))
def back_to_back_ms(fn, reps=300):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps): fn()
    b.record(); torch.cuda.synchronize(); return a.elapsed_time(b) / reps
for name, fn in (("empty", empty), ("sdpa", sdpa), ("sig 4d", sig4), ("sig 3d", sig3), ("sig 3d .default", sig3o)):
    with torch.no_grad():
        ng = host_us(fn)
    with torch.inference_mode():
        im = host_us(fn)
        b2b = back_to_back_ms(fn)
    print(f"{name:15s} host us/call: grad-mode {host_us(fn):7.1f}  no_grad {ng:7.1f}  inference_mode {im:7.1f}  "
          f"event ms {gpu_ms(fn):.4f}  back-to-back ms {b2b:.4f}")
with torch.no_grad():
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(50): sig3()
        torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
