# GPU tests of torch.ops.hashhop.* on CUDA tensors: each CUDA op against the same op on CPU tensors (the float64 references), gradients, argument errors, no host<->device copies or syncs inside an op.
# Run on the GPU machine: HASHHOP_OPS_LIB=build-gpu/libhashhop_ops.so python3 -m pytest -q tests/python/test_ops_cuda.py (or python3 tests/python/test_ops_cuda.py without pytest).
"""Tolerances (written once here, used by every comparison):

* Reference: the CPU op on float64 copies of the very inputs the CUDA op got (already rounded to bf16/fp16
  when that is the dtype under test), so both sides select the same keys and only arithmetic differs.
* fp32: max |cuda - ref| <= 2e-5 * max(1, max |ref|) (float32 accumulation, __expf).
  Gradients: 1e-4 * max(1, max |ref|) (float32 gathers, scatters by atomics).
* bf16 / fp16: the CUDA ops compute in float32 and round the result once, so the error is bounded by the
  rounding error a low-precision reference itself makes: max |cuda - ref| <= 2 * max |round(ref) - ref|
  + 1e-5 * max(1, max |ref|) (gradients: + 1e-4 * ...), as flash-attention's tests do.
* Key selections (signature top-k, index candidates, buckets) are integers: both devices keep the same keys,
  which the tight tolerances above would catch (one missing key moves an output by ~1/kept).
"""
import os
import sys

try:
    import pytest
except ImportError:  # the GPU machine may lack pytest: run this file directly (see __main__ below)
    pytest = None
try:
    import torch
except ImportError:  # CPU CI may run this folder without torch: everything here skips
    torch = None

LIB = os.environ.get("HASHHOP_OPS_LIB", "build/libhashhop_ops.so")
HAVE_CUDA = torch is not None and torch.cuda.is_available()


def registered():
    try:
        torch.ops.hashhop.signature_attention  # noqa: B018 (raises if no library registered the namespace)
        return True
    except (AttributeError, RuntimeError):
        return False


if HAVE_CUDA and not registered():  # one TORCH_LIBRARY per namespace and process: the package may have loaded it
    torch.ops.load_library(LIB)
if pytest is not None:
    pytestmark = pytest.mark.skipif(not HAVE_CUDA, reason="needs torch with a CUDA device and a CUDA build of libhashhop_ops.so")

OPS = torch.ops.hashhop if torch is not None else None
DEV = "cuda"
LOW = (torch.bfloat16, torch.float16) if torch is not None else ()


def tolerance(ref, dtype, relative):
    scale = max(1.0, ref.abs().max().item())
    if dtype in LOW:
        rounding = (ref.to(dtype).double() - ref).abs().max().item()
        return 2 * rounding + relative * scale
    return relative * scale


def assert_close(out, ref, dtype, what, relative=2e-5):
    out = out.detach().double().cpu()
    ref = ref.detach().double().cpu()
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert torch.isfinite(out).all(), f"{what}: non-finite output"
    err = (out - ref).abs().max().item()
    tol = tolerance(ref, dtype, relative)
    assert err <= tol, f"{what}: max error {err:.3e} > tolerance {tol:.3e}"


def qkv(heads_q, heads_kv, n_q, n_k, dim, dtype, seed):
    g = torch.Generator(device="cpu").manual_seed(seed)
    make = lambda h, n: torch.randn(h, n, dim, generator=g).to(dtype).to(DEV)  # noqa: E731
    return make(heads_q, n_q), make(heads_kv, n_k), make(heads_kv, n_k)


def cpu64(*tensors):
    return [t.detach().cpu().double() for t in tensors]


def signatures_of(x, planes):
    """Packed sign bits of x @ planes on the device ([heads, n, words] int64), as a learned map would give."""
    heads, n, _ = x.shape
    logits = x.float() @ planes
    return OPS.pack_signatures(logits.reshape(heads * n, -1)).reshape(heads, n, -1)


# ---- pack_signatures ----

def test_pack_signatures_equals_cpu():
    g = torch.Generator(device="cpu").manual_seed(1)
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
        for bits in (1, 63, 64, 70, 128, 200):
            logits = torch.randn(37, bits, generator=g).to(dtype)
            logits[0, 0] = 0  # the rule is logit >= 0: an exact zero is a 1 bit
            logits[1, 0] = -0.0
            got = OPS.pack_signatures(logits.to(DEV))
            assert got.is_cuda and got.dtype == torch.int64
            assert torch.equal(got.cpu(), OPS.pack_signatures(logits)), f"pack_signatures {dtype} bits {bits}"


# ---- signature_attention ----

SIGNATURE_CASES = [
    # heads_q, heads_kv, n_q, n_k, bits, sinks, window, top_k, top_fraction, causal
    (8, 2, 1, 3000, 64, 4, 16, 64, 0.0, False),   # decode, grouped heads
    (8, 2, 1, 3001, 128, 0, 8, 0, 0.05, True),    # odd n_k (unpaired scan), two-word signatures, top_fraction
    (4, 4, 3, 2048, 64, 1, 4, 300, 0.0, True),    # a few queries per head, more than one decode split
    (4, 2, 192, 192, 64, 2, 8, 16, 0.0, True),    # prefill: every query its own causal frame
    (2, 1, 96, 160, 100, 0, 0, 0, 0.3, False),    # prefill, non-causal, budget from top_fraction
    (4, 2, 2, 20000, 64, 4, 16, 600, 0.0, True),  # rows past 16K keys: the tiled selection, not one block per row
]


def test_signature_attention_equals_cpu():
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        for dim in (64, 128):
            for index, (hq, hkv, n_q, n_k, bits, sinks, window, top_k, frac, causal) in enumerate(SIGNATURE_CASES):
                q, k, v = qkv(hq, hkv, n_q, n_k, dim, dtype, seed=100 + index)
                planes = torch.randn(dim, bits, device=DEV, generator=torch.Generator(device=DEV).manual_seed(index))
                qs, ks = signatures_of(q, planes), signatures_of(k, planes)
                scale = dim ** -0.5
                args = (bits, sinks, window, top_k, frac, causal, scale)
                out = OPS.signature_attention(q, k, v, qs, ks, *args)
                assert out.dtype == dtype and out.is_cuda
                ref = OPS.signature_attention(*cpu64(q, k, v), qs.cpu(), ks.cpu(), *args)
                assert_close(out, ref, dtype, f"signature {dtype} dim {dim} case {index}")
                with torch.inference_mode():  # the CUDA key alone (autograd skipped) gives the same
                    again = OPS.signature_attention(q, k, v, qs, ks, *args)
                assert torch.equal(out, again), f"signature inference_mode {dtype} dim {dim} case {index}"


def test_signature_attention_keeps_everything_when_top_k_covers_all():
    q, k, v = qkv(4, 2, 64, 64, 128, torch.float32, seed=7)
    planes = torch.randn(128, 64, device=DEV)
    qs, ks = signatures_of(q, planes), signatures_of(k, planes)
    out = OPS.signature_attention(q, k, v, qs, ks, 64, 0, 0, 64, 0.0, True, 0.1)
    ref = OPS.dense_attention(*cpu64(q, k, v), None, True, 0.1)
    assert_close(out, ref, torch.float32, "signature k = n vs dense")


def grads_of(op, inputs, grad_out):
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    op(*inputs).backward(grad_out)
    return [x.grad for x in inputs]


def test_signature_attention_gradients_equal_cpu():
    for dtype in (torch.float32, torch.bfloat16):
        for hq, hkv, n_q, n_k, causal in ((8, 2, 1, 1500, False), (4, 2, 48, 48, True)):
            q, k, v = qkv(hq, hkv, n_q, n_k, 64, dtype, seed=n_k)
            planes = torch.randn(64, 64, device=DEV)
            qs, ks = signatures_of(q, planes), signatures_of(k, planes)
            args = (64, 2, 4, 12, 0.0, causal, 0.125)
            grad_out = torch.randn(hq, n_q, 64).to(dtype)
            got = grads_of(lambda a, b, c: OPS.signature_attention(a, b, c, qs, ks, *args), (q, k, v), grad_out.to(DEV))
            want = grads_of(lambda a, b, c: OPS.signature_attention(a, b, c, qs.cpu(), ks.cpu(), *args), cpu64(q, k, v),
                            grad_out.double())
            for name, g, w in zip("qkv", got, want):
                assert g.dtype == dtype
                assert_close(g, w, dtype, f"signature d{name} {dtype} n_q {n_q}", relative=1e-4)


# ---- bucket_attention ----

BUCKET_CASES = [
    # heads_q, heads_kv, n_q, n_k, bucket_bits, rounds, causal
    (4, 2, 256, 256, 2, 1, True),   # prefill
    (4, 4, 200, 333, 3, 3, True),   # rounds merged, causal offset, ragged tiles
    (8, 2, 1, 4096, 4, 2, False),   # decode
    (2, 1, 64, 64, 0, 1, False),    # one bucket: dense
]


def test_bucket_attention_equals_cpu():
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        for dim in (64, 128):
            for index, (hq, hkv, n_q, n_k, bucket_bits, rounds, causal) in enumerate(BUCKET_CASES):
                q, k, v = qkv(hq, hkv, n_q, n_k, dim, dtype, seed=200 + index)
                args = (bucket_bits, rounds, "lsh", 11 + index, causal, dim ** -0.5)
                out = OPS.bucket_attention(q, k, v, *args)
                assert out.dtype == dtype and out.is_cuda
                ref = OPS.bucket_attention(*cpu64(q, k, v), *args)
                assert_close(out, ref, dtype, f"bucket {dtype} dim {dim} case {index}")


def test_bucket_attention_mixed_heads_equal_cpu():
    # Mixed heads: the hashed heads by the bucket kernels, the dense ones by SDPA, against the float64 CPU op
    # (whose dense heads keep every key); values and gradients, square causal, offset causal and grouped heads.
    for dtype in (torch.bfloat16, torch.float32):
        for index, (hq, hkv, n_q, n_k, dense_heads, causal) in enumerate([(4, 2, 256, 256, 2, True), (8, 8, 100, 300, 6, True),
                                                                           (4, 1, 64, 64, 4, False)]):
            q, k, v = qkv(hq, hkv, n_q, n_k, 64, dtype, seed=300 + index)
            args = (3, 2, "lsh", 5, causal, 0.125, dense_heads)
            out = OPS.bucket_attention(q, k, v, *args)
            ref = OPS.bucket_attention(*cpu64(q, k, v), *args)
            # bf16: SDPA rounds its probabilities to bf16 before P·V (the bucket tiles split them in two parts), so
            # the dense heads get 4e-3 of the output's scale on top of twice the output's own rounding.
            assert_close(out, ref, dtype, f"mixed heads {dtype} case {index}", relative=4e-3 if dtype == torch.bfloat16 else 2e-5)
            hashed = OPS.bucket_attention(*cpu64(q, k, v), *args[:-1])
            assert (ref[hq - dense_heads:] - hashed[hq - dense_heads:]).abs().max() > 1e-3  # the dense heads do differ
            if dtype != torch.float32:
                continue  # gradients in float32 only: SDPA's bf16 backward is not held to this harness's bound
            grad_out = torch.randn(hq, n_q, 64).to(dtype)
            got = grads_of(lambda a, b, c: OPS.bucket_attention(a, b, c, *args), (q, k, v), grad_out.to(DEV))
            want = grads_of(lambda a, b, c: OPS.bucket_attention(a, b, c, *args), cpu64(q, k, v), grad_out.double())
            for name, g, w in zip("qkv", got, want):
                assert_close(g, w, dtype, f"mixed heads d{name} {dtype} case {index}", relative=1e-4)
    # Batched [B, heads, n, dim]: dense_heads counts within each sequence's heads.
    q, k, v = qkv(2 * 4, 2 * 2, 64, 64, 64, torch.float32, seed=7)
    q, k, v = q.view(2, 4, 64, 64), k.view(2, 2, 64, 64), v.view(2, 2, 64, 64)
    args = (3, 2, "lsh", 5, True, 0.125, 2)
    assert_close(OPS.bucket_attention(q, k, v, *args), OPS.bucket_attention(*cpu64(q, k, v), *args), torch.float32, "mixed heads batched")
    q, k, v = qkv(4, 2, 32, 32, 64, torch.float32, seed=1)
    expect_error(lambda: OPS.bucket_attention(q, k, v, 2, 1, "lsh", 0, False, 1.0, 1), "bucket_attention: dense_heads must be a multiple")


def test_bucket_attention_gradients_equal_cpu():
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = qkv(4, 2, 96, 128, 64, dtype, seed=5)
        args = (2, 2, "lsh", 3, True, 0.125)
        grad_out = torch.randn(4, 96, 64).to(dtype)
        got = grads_of(lambda a, b, c: OPS.bucket_attention(a, b, c, *args), (q, k, v), grad_out.to(DEV))
        want = grads_of(lambda a, b, c: OPS.bucket_attention(a, b, c, *args), cpu64(q, k, v), grad_out.double())
        for name, g, w in zip("qkv", got, want):
            assert_close(g, w, dtype, f"bucket d{name} {dtype}", relative=1e-4)


# ---- index_attention ----

def pooled_signatures(heads, n, pool, g):
    """Signatures drawn from a small pool, so codes repeat and every query finds several keys."""
    return pool[torch.randint(0, pool.numel(), (heads, n), generator=g)]


def test_index_attention_equals_cpu():
    g = torch.Generator(device="cpu").manual_seed(9)
    pool = torch.randint(-2**62, 2**62, (40,), generator=g)
    pool[0] = -1  # the all-ones code has its own slot in the CUDA tables
    for dtype in (torch.bfloat16, torch.float32):
        for hq, hkv, n_q, n_k, causal in ((8, 2, 1, 2000, False), (4, 2, 64, 300, True)):
            for tables, bits_per_table in ((0, 16), (3, 8)):
                q, k, v = qkv(hq, hkv, n_q, n_k, 128, dtype, seed=n_k + tables)
                qs, ks = pooled_signatures(hq, n_q, pool, g), pooled_signatures(hkv, n_k, pool, g)
                args = (64, tables, bits_per_table, 7, causal, 0.09)
                out = OPS.index_attention(q, k, v, qs.to(DEV), ks.to(DEV), *args)
                ref = OPS.index_attention(*cpu64(q, k, v), qs, ks, *args)
                assert_close(out, ref, dtype, f"index {dtype} n_q {n_q} tables {tables}")
    q, k, v = qkv(4, 2, 32, 200, 64, torch.float32, seed=3)
    qs, ks = pooled_signatures(4, 32, pool, g), pooled_signatures(2, 200, pool, g)
    grad_out = torch.randn(4, 32, 64)
    args = (64, 0, 16, 0, True, 0.125)
    got = grads_of(lambda a, b, c: OPS.index_attention(a, b, c, qs.to(DEV), ks.to(DEV), *args), (q, k, v), grad_out.to(DEV))
    want = grads_of(lambda a, b, c: OPS.index_attention(a, b, c, qs, ks, *args), cpu64(q, k, v), grad_out.double())
    for name, gg, w in zip("qkv", got, want):
        assert_close(gg, w, torch.float32, f"index d{name}", relative=1e-4)


# ---- layouts and errors ----

def test_non_contiguous_inputs_give_the_same_result():
    q, k, v = qkv(4, 2, 16, 256, 64, torch.bfloat16, seed=4)
    planes = torch.randn(64, 64, device=DEV)
    qs, ks = signatures_of(q, planes), signatures_of(k, planes)
    qt = q.transpose(0, 1).contiguous().transpose(0, 1)  # same values, strides [dim, heads*dim, 1]
    assert not qt.is_contiguous()
    args = (64, 1, 4, 16, 0.0, True, 0.125)
    assert torch.equal(OPS.signature_attention(qt, k, v, qs, ks, *args), OPS.signature_attention(q, k, v, qs, ks, *args))
    assert torch.equal(OPS.bucket_attention(qt, k, v, 2, 1, "lsh", 0, True, 0.125), OPS.bucket_attention(q, k, v, 2, 1, "lsh", 0, True, 0.125))


def expect_error(call, text):
    try:
        call()
    except RuntimeError as e:
        assert text in str(e), f"error {str(e).splitlines()[0]!r} does not mention {text!r}"
        return
    raise AssertionError(f"no error; expected one mentioning {text!r}")


def test_bad_arguments_give_clear_errors():
    q, k, v = qkv(4, 2, 3, 100, 64, torch.bfloat16, seed=6)
    planes = torch.randn(64, 64, device=DEV)
    qs, ks = signatures_of(q, planes), signatures_of(k, planes)
    sig = lambda *x, bits=64: OPS.signature_attention(*x, bits, 0, 0, 8, 0.0, False, 1.0)  # noqa: E731
    expect_error(lambda: sig(q, k.cpu(), v, qs, ks), "signature_attention: k must be on q's device")
    expect_error(lambda: sig(q, k, v, qs.cpu(), ks), "signature_attention: q_signatures must be on q's device")
    expect_error(lambda: sig(q, k.float(), v, qs, ks), "signature_attention: q, k and v must share one dtype")
    expect_error(lambda: sig(q.double(), k.double(), v.double(), qs, ks), "signature_attention: q on CUDA must be bfloat16, float16 or float32")
    q32, k32, v32 = qkv(4, 2, 3, 100, 32, torch.bfloat16, seed=6)
    expect_error(lambda: sig(q32, k32, v32, qs, ks), "signature_attention: q: the CUDA kernels support head dim 64 or 128")
    expect_error(lambda: sig(q, k, v, qs, ks, bits=200), "signature_attention: bits must be in [1, 128] on CUDA")
    expect_error(lambda: sig(q, k, v, qs.int(), ks), "signature_attention: q_signatures must be int64")
    expect_error(lambda: sig(q, k, v, qs, ks[:, :50]), "signature_attention: k_signatures must be [2, 100, 1]")
    expect_error(lambda: OPS.bucket_attention(q, k, v, 2, 1, "lsh_sha256", 0, False, 1.0), "bucket_attention: bucket_fn 'lsh_sha256'")
    expect_error(lambda: OPS.bucket_attention(q, k, v, 2, 9, "lsh", 0, False, 1.0), "bucket_attention: rounds must be in [1, 8] on CUDA")
    expect_error(lambda: OPS.bucket_attention(q[:3], k, v, 2, 1, "lsh", 0, False, 1.0),
                 "bucket_attention: heads_q (3) must be a multiple of heads_kv (2)")
    expect_error(lambda: OPS.index_attention(q, k, v, qs[..., 0], ks[..., 0], 64, 2, 70, 0, False, 1.0), "index_attention: bits_per_table")
    expect_error(lambda: OPS.pack_signatures(torch.randn(3, device=DEV)), "pack_signatures: logits must be [n, bits]")


# ---- no copies, no syncs, and the kernels really run ----

def profile(call):
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize()  # outside the op: lets the profiler collect the GPU activity
    return [e.name for e in prof.events()]


FORBIDDEN = ("Memcpy HtoD", "Memcpy DtoH", "cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaMemcpy ")


def sync_names(names):
    return [n for n in names if n in ("cudaDeviceSynchronize", "cudaStreamSynchronize")]


def check_clean(names, kernels, what, absent=()):
    # The trailing torch.cuda.synchronize() above is ours and the profiler adds its own: count syncs only
    # beyond those seen around a call that does nothing.
    syncs = sync_names(names)
    allowed = len(sync_names(profile(lambda: None)))
    assert len(syncs) <= allowed, f"{what}: synchronises inside the op: {syncs} (an empty call shows {allowed})"
    copies = [n for n in names if any(f in n for f in FORBIDDEN[:2]) or n.startswith("cudaMemcpy ") or n == "cudaMemcpy"]
    assert not copies, f"{what}: host<->device copies inside the op: {sorted(set(copies))}"
    for kernel in kernels:
        assert any(kernel in n for n in names), f"{what}: kernel {kernel} did not run (names: {sorted(set(names))[:40]})"
    for kernel in absent:  # launches a fused path saves
        assert not any(kernel in n for n in names), f"{what}: kernel {kernel} ran (names: {sorted(set(names))[:40]})"


def test_ops_make_no_host_copies_and_no_syncs():
    q, k, v = qkv(8, 2, 1, 4096, 128, torch.bfloat16, seed=8)
    planes = torch.randn(128, 64, device=DEV)
    qs, ks = signatures_of(q, planes), signatures_of(k, planes)
    g = torch.Generator(device="cpu").manual_seed(2)
    pool = torch.randint(-2**62, 2**62, (64,), generator=g)
    iqs, iks = pooled_signatures(8, 1, pool, g).to(DEV), pooled_signatures(2, 4096, pool, g).to(DEV)
    calls = {
        "pack_signatures": (lambda: OPS.pack_signatures(torch.randn(64, 128, device=DEV) @ planes), ["pack_kernel"]),
        "signature_attention": (lambda: OPS.signature_attention(q, k, v, qs, ks, 64, 4, 16, 64, 0.0, False, 0.09),
                                ["hamming_scan_kernel", "tile_write_kernel", "decode_kernel", "combine_kernel"]),
        "bucket_attention": (lambda: OPS.bucket_attention(q, k, v, 3, 2, "lsh", 1, False, 0.09),
                             ["lsh_ids_kernel", "bucket_mma_kernel", "merge_rounds_kernel"]),  # bf16: the tensor-core tiles
        "index_attention exact": (lambda: OPS.index_attention(q, k, v, iqs, iks, 64, 0, 16, 0, False, 0.09),
                                  ["insert_kernel", "lookup_kernel", "decode_kernel"]),
        "index_attention lsh": (lambda: OPS.index_attention(q, k, v, iqs, iks, 64, 3, 8, 1, False, 0.09),
                                ["insert_kernel", "lookup_kernel", "decode_kernel"]),
    }
    # Rows of up to 16K keys are selected by one block each; up to 64K keys by per-tile histograms and the
    # write kernel (no memset, no count kernel); longer rows by scan, count and write. Every way the decode's
    # last split merges (no combine_kernel) and, up to 512K keys, no tile_scan_kernel runs.
    _, k_long, v_long = qkv(8, 2, 1, 20000, 128, torch.bfloat16, seed=9)
    ks_long = signatures_of(k_long, planes)
    _, k_longer, v_longer = qkv(8, 2, 1, 100000, 64, torch.bfloat16, seed=10)
    ks_longer = signatures_of(k_longer, torch.randn(64, 64, device=DEV))
    q64, qs64 = q[..., :64].contiguous(), signatures_of(q[..., :64], torch.randn(64, 64, device=DEV))
    absent = {"signature_attention": ["combine_kernel", "hamming_scan_kernel"],
              "signature_attention 20K keys": ["combine_kernel", "select_row_kernel", "hamming_scan_kernel",
                                               "tile_count_kernel", "tile_scan_kernel"],
              "signature_attention 100K keys": ["combine_kernel", "select_row_kernel", "tile_histogram_kernel",
                                                "tile_scan_kernel"]}
    calls["signature_attention"] = (calls["signature_attention"][0], ["select_row_kernel", "decode_kernel"])
    calls["signature_attention 20K keys"] = (
        lambda: OPS.signature_attention(q, k_long, v_long, qs, ks_long, 64, 4, 16, 64, 0.0, False, 0.09),
        ["tile_histogram_kernel", "tile_write_kernel", "decode_kernel"])
    calls["signature_attention 100K keys"] = (
        lambda: OPS.signature_attention(q64, k_longer, v_longer, qs64, ks_longer, 64, 4, 16, 64, 0.0, False, 0.09),
        ["hamming_scan_kernel", "tile_count_kernel", "tile_write_kernel", "decode_kernel"])
    for what, (call, kernels) in calls.items():
        call()  # first call: caches (bucket rotations, sampled bits) upload once
        check_clean(profile(call), kernels, what, absent.get(what, ()))
    qg, kg, vg = (x.float().requires_grad_(True) for x in (q, k, v))

    def backward_signature():
        OPS.signature_attention(qg, kg, vg, qs, ks, 64, 4, 16, 64, 0.0, False, 0.09).sum().backward()

    def backward_bucket():
        OPS.bucket_attention(qg, kg, vg, 3, 2, "lsh", 1, False, 0.09).sum().backward()

    for what, call in (("signature_attention backward", backward_signature), ("bucket_attention backward", backward_bucket)):
        call()
        check_clean(profile(call), [], what)


def run_without_pytest(namespace):
    """Runs every test_* of a module's namespace and exits non-zero if any failed (for machines without pytest)."""
    if not HAVE_CUDA:
        print("skipped: no CUDA device")
        sys.exit(0)
    failed = 0
    for name, test in sorted((n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)):
        try:
            test()
            print(f"PASS {name}")
        except Exception as e:  # report every test, then fail
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run_without_pytest(globals())
