# GPU tests of the KV-cache decode API (kv_cache_append / signature_decode) on CUDA: each against the same op on CPU tensors.
# Run on the GPU machine: HASHHOP_OPS_LIB=build-gpu/libhashhop_ops.so python3 -m pytest -q tests/python/test_kv_cache_cuda.py (or run the file).
"""Tolerances (the ones of test_ops_cuda.py, written down there): the reference is the CPU op on float64 copies
of the very inputs the CUDA op got, so both keep the same keys (integers: any difference in the kept set
moves an output by ~1/kept, far above the tolerance) and only arithmetic differs. fp32: 2e-5 * max(1, |ref|);
bf16/fp16: 2 * (rounding error of a low-precision reference) + 1e-5 * max(1, |ref|). Appends are copies and
sign bits: bit-exact."""
import os
import sys

try:
    import pytest
except ImportError:
    pytest = None
try:
    import torch
except ImportError:
    torch = None

sys.path.insert(0, os.path.dirname(__file__))
from test_ops_cuda import DEV, HAVE_CUDA, OPS, assert_close, check_clean, profile, run_without_pytest  # noqa: E402 (loads the library)

if pytest is not None:
    pytestmark = pytest.mark.skipif(not HAVE_CUDA, reason="needs torch with a CUDA device and a CUDA build of libhashhop_ops.so")


def make_cache(batch, heads_kv, capacity, dim, words, dtype, device):
    return (torch.zeros(batch, heads_kv, capacity, dim, dtype=dtype, device=device),
            torch.zeros(batch, heads_kv, capacity, dim, dtype=dtype, device=device),
            torch.zeros(batch, heads_kv, capacity, words, dtype=torch.int64, device=device),
            torch.zeros(batch, dtype=torch.int32, device=device))


def on(device, tensors):
    return [t.to(device) for t in tensors]


def append_both(gpu, cpu, k, v, logits, views=None):
    """One append of the same rows to the CUDA cache and the CPU float64 cache (on one-sequence views when
    `views` is a batch index); checks dropped counts and lengths agree."""
    if views is not None:
        gpu = [t[views:views + 1] for t in gpu]
        cpu = [t[views:views + 1] for t in cpu]
    dropped_gpu = OPS.kv_cache_append(*gpu, *on(DEV, (k, v, logits)))
    dropped_cpu = OPS.kv_cache_append(*cpu, k.double(), v.double(), logits.double())
    assert torch.equal(dropped_gpu.cpu(), dropped_cpu), f"dropped counts differ: {dropped_gpu.tolist()} vs {dropped_cpu.tolist()}"
    assert torch.equal(gpu[3].cpu(), cpu[3]), f"lengths differ: {gpu[3].tolist()} vs {cpu[3].tolist()}"


def fill_both(batch, heads_kv, capacity, dim, bits, dtype, prefix, chunks, seed, logits_dtype=None):
    """The same random appends on a CUDA cache and a CPU float64 cache (inputs rounded to dtype first): first
    prefix[b] rows to sequence b alone (through one-sequence views), then `chunks` rows to every sequence.
    Checks every append's dropped counts and lengths, then rows and signature words, exactly."""
    g = torch.Generator().manual_seed(seed)
    words = (bits + 63) // 64
    gpu = make_cache(batch, heads_kv, capacity, dim, words, dtype, DEV)
    cpu = make_cache(batch, heads_kv, capacity, dim, words, torch.float64, "cpu")

    def rows(b, t):
        k = torch.randn(b, heads_kv, t, dim, generator=g).to(dtype)
        v = torch.randn(b, heads_kv, t, dim, generator=g).to(dtype)
        logits = torch.randn(b, heads_kv, t, bits, generator=g).to(logits_dtype or dtype)
        if t:
            logits[0, 0, 0, 0] = 0  # logit >= 0 is a 1 bit, exact zeros included
        return k, v, logits

    for b, n in enumerate(prefix):
        if n:
            append_both(gpu, cpu, *rows(1, n), views=b)
    for t in chunks:
        append_both(gpu, cpu, *rows(batch, t))
    assert torch.equal(gpu[0].cpu().double(), cpu[0]) and torch.equal(gpu[1].cpu().double(), cpu[1]), "rows differ"
    assert torch.equal(gpu[2].cpu(), cpu[2]), "signature words differ"
    return gpu, cpu


CASES = [
    # batch, heads_q, heads_kv, capacity, bits, prefix lengths, append chunks, sinks, window, top_k, top_fraction
    (3, 8, 2, 4096, 64, [0, 1000, 4050], [64, 1, 31], 4, 16, 64, 0.0),     # ragged, one sequence overflows
    (2, 4, 4, 3001, 128, [2999, 17], [5, 100], 0, 8, 0, 0.05),              # odd capacity, two words, top_fraction
    (4, 8, 8, 2048, 64, [0, 0, 5, 2000], [0], 1, 0, 300, 0.0),              # two empty sequences, a t = 0 append
    (2, 2, 2, 512, 100, [3, 400], [2], 8, 8, 16, 0.0),                      # 100 bits, a sequence shorter than sinks + window
    (2, 4, 2, 700, 33, [650, 1], [30], 2, 4, 40, 0.0),                      # 33 bits (one partial word)
    # A 20,000-row capacity takes the fused tile-histogram selection: ragged lengths 2, 3,002 and 19,002
    # (tiles past a sequence's length must count nothing; the last ends inside a tile).
    (3, 4, 2, 20000, 64, [0, 3000, 19000], [2], 2, 8, 0, 0.03),
]


def test_append_and_decode_equal_cpu():
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        for dim in (64, 128):
            for index, (b, hq, hkv, cap, bits, prefix, chunks, sinks, window, top_k, frac) in enumerate(CASES):
                # Odd cases feed float32 logits to a low-precision cache, as a float32 phi_k would.
                logits_dtype = torch.float32 if index % 2 else dtype
                gpu, cpu = fill_both(b, hkv, cap, dim, bits, dtype, prefix, chunks, seed=10 + index, logits_dtype=logits_dtype)
                g = torch.Generator().manual_seed(20 + index)
                q = torch.randn(b, hq, dim, generator=g).to(dtype)
                q_logits = torch.randn(b * hq, bits, generator=g)
                qs = OPS.pack_signatures(q_logits).view(b, hq, -1)
                scale = dim ** -0.5
                args = (bits, sinks, window, top_k, frac, scale)
                out = OPS.signature_decode(q.to(DEV), qs.to(DEV), *gpu, *args)
                assert out.dtype == dtype and out.is_cuda and out.shape == (b, hq, dim)
                ref = OPS.signature_decode(q.double(), qs, *cpu, *args)
                assert_close(out, ref, dtype, f"signature_decode {dtype} dim {dim} case {index}")
                empty = (cpu[3] == 0).nonzero().flatten().tolist()
                assert (index == 2) == bool(empty), f"case {index}: empty sequences {empty}"
                for e in empty:
                    assert (out[e] == 0).all(), "an empty sequence decodes to zeros"


def test_lengths_outside_the_cache_are_clamped_as_on_cpu():
    gpu, cpu = fill_both(3, 2, 64, 128, 64, torch.bfloat16, [10, 0, 0], [], seed=4)
    for caches in (gpu, cpu):
        caches[3].copy_(torch.tensor([-3, 69, 64], dtype=torch.int32))
    g = torch.Generator().manual_seed(5)
    k = torch.randn(3, 2, 2, 128, generator=g).to(torch.bfloat16)
    append_both(gpu, cpu, k, k, torch.randn(3, 2, 2, 64, generator=g))
    assert cpu[3].tolist() == [2, 64, 64]
    assert torch.equal(gpu[0].cpu().double(), cpu[0]) and torch.equal(gpu[2].cpu(), cpu[2])


def test_decode_of_a_full_cache_equals_signature_attention_per_sequence():
    gpu, _ = fill_both(2, 2, 1024, 128, 64, torch.bfloat16, [0, 0], [1024], seed=3)
    q = torch.randn(2, 4, 128, device=DEV, dtype=torch.bfloat16)
    qs = OPS.pack_signatures(torch.randn(8, 64, device=DEV)).view(2, 4, 1)
    out = OPS.signature_decode(q, qs, *gpu, 64, 2, 8, 32, 0.0, 0.088)
    for b in range(2):
        want = OPS.signature_attention(q[b][:, None], gpu[0][b], gpu[1][b], qs[b][:, None], gpu[2][b], 64, 2, 8, 32, 0.0,
                                       False, 0.088).squeeze(1)
        assert torch.equal(out[b], want), "the cache path and signature_attention keep the same keys and arithmetic"


def test_bad_arguments_name_the_op_and_argument():
    gpu = make_cache(2, 2, 64, 128, 1, torch.bfloat16, DEV)
    k = torch.randn(2, 2, 1, 128, device=DEV, dtype=torch.bfloat16)
    lg = torch.randn(2, 2, 1, 64, device=DEV)
    cases = [
        (lambda: OPS.kv_cache_append(*gpu[:3], gpu[3].cpu(), k, k, lg), "kv_cache_append: every cache tensor must be on"),
        (lambda: OPS.kv_cache_append(*gpu, k.cpu(), k.cpu(), lg.cpu()), "kv_cache_append: k, v and k_logits must be on"),
        (lambda: OPS.kv_cache_append(*gpu, k.float(), k.float(), lg), "kv_cache_append: k and v must have the cache's dtype"),
        (lambda: OPS.signature_decode(k[:, :, 0], torch.zeros(2, 2, 3, dtype=torch.int64, device=DEV),
                                      *make_cache(2, 2, 64, 128, 3, torch.bfloat16, DEV), 192, 0, 0, 8),
         "signature_decode: bits must be in [1, 128] on CUDA"),
        (lambda: OPS.kv_cache_append(gpu[0], gpu[1], gpu[2], torch.zeros(2, 2, dtype=torch.int32, device=DEV)[:, 0], k, k, lg),
         "kv_cache_append: lengths must be contiguous"),
    ]
    for call, message in cases:
        try:
            call()
        except RuntimeError as e:
            assert message in str(e).splitlines()[0], f"expected '{message}', got: {str(e).splitlines()[0]}"
        else:
            raise AssertionError(f"no error for: {message}")


def test_cache_ops_make_no_host_copies_and_no_syncs():
    gpu = make_cache(8, 2, 1 << 16, 128, 1, torch.bfloat16, DEV)
    k = torch.randn(8, 2, 4096, 128, device=DEV, dtype=torch.bfloat16)
    lg = torch.randn(8, 2, 4096, 64, device=DEV)
    q = torch.randn(8, 8, 128, device=DEV, dtype=torch.bfloat16)
    qs = OPS.pack_signatures(torch.randn(64, 64, device=DEV)).view(8, 8, 1)
    OPS.kv_cache_append(*gpu, k, k, lg)
    calls = {
        "kv_cache_append": (lambda: OPS.kv_cache_append(*gpu, k[:, :, :1], k[:, :, :1], lg[:, :, :1]), ["append_kernel"]),
        "signature_decode": (lambda: OPS.signature_decode(q, qs, *gpu, 64, 4, 16, 256, 0.0, 0.088),
                             ["tile_histogram_kernel", "tile_write_kernel", "decode_kernel"]),
    }
    # A 64K-key capacity: per-tile histograms and the write kernel select (no scan, count or combine kernel).
    absent = {"signature_decode": ["combine_kernel", "hamming_scan_kernel", "tile_count_kernel"]}
    for what, (call, kernels) in calls.items():
        call()
        check_clean(profile(call), kernels, what, absent.get(what, ()))


if __name__ == "__main__":
    run_without_pytest(globals())
