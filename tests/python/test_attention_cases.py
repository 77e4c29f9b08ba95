# The attention case registry from Python: every case marked for torch runs torch.ops.hashhop.* on the CPU
# against a dense float64 torch reference. Run: PYHASHHOP_TEST_STRICT=1 python -m pytest -q tests/python/test_attention_cases.py
"""Tolerances come from the registry (include/hashhop/attn/attention_cases.h), as flash-attention's tests
write them: the op on float64 inputs within ``float64_abs`` of the float64 reference; on float32 inputs,
|op - ref64| <= lowprec_factor * max|ref32 - ref64| + lowprec_abs, where ref32 is the same reference computed
in float32 (the error the reference itself makes at that precision). Key sets are rebuilt here from each
mechanism's rule: bucket ids and LSH bit positions come from pyhashhop._core (the float64 references)."""
import math

import pytest

import pyhashhop
from pyhashhop import _core
from conftest import need

torch = need("torch")
from pyhashhop import ops  # noqa: E402,F401  (loads libhashhop_ops.so: torch.ops.hashhop.*)

CASES = pyhashhop.attention_cases("torch")
U64 = (1 << 64) - 1


def test_the_registry_reaches_python():
    everything = pyhashhop.attention_cases()
    assert len(CASES) > 50 and len(everything) > len(CASES)
    assert {c["mechanism"] for c in CASES} == {"dense", "bucket", "signature_topk", "index"}
    assert len({c["name"] for c in everything}) == len(everything)
    with pytest.raises(ValueError):
        pyhashhop.attention_cases("tpu")


def draw_signatures(rows, words, options, g):
    """int64 words [rows, words] as the case draws them (the top bits past `bits` cleared)."""
    draw = options["signatures"]
    if draw == "identical":
        s = torch.full((rows, words), 42, dtype=torch.int64)
    elif draw == "few_distinct":
        s = torch.randint(0, 1 << options["distinct_bits"], (rows, words), generator=g, dtype=torch.int64)
    else:
        s = torch.randint(-(1 << 63), (1 << 63) - 1, (rows, words), generator=g, dtype=torch.int64)
    if options["bits"] % 64:
        s[:, -1] &= (1 << (options["bits"] % 64)) - 1
    return s


def popcount_similarity(a, b, bits):
    return bits - sum(((int(x) ^ int(y)) & U64).bit_count() for x, y in zip(a, b))


def visible(n_q, n_k, causal):
    """[n_q, n_k] bool: key j is visible to query i (causal queries sit at the end of the keys)."""
    if not causal:
        return torch.ones(n_q, n_k, dtype=torch.bool)
    return torch.arange(n_k)[None, :] <= (torch.arange(n_q)[:, None] + n_k - n_q)


def keep_mask(case, q64, k64, q_sigs, k_sigs):
    """[heads_q, n_q, n_k] bool: the keys the mechanism keeps (before causality), by its rule."""
    s, o = case["shape"], case["options"]
    hq, hkv, n_q, n_k = s["heads_q"], s["heads_kv"], s["n_q"], s["n_k"]
    group = hq // hkv
    mech = case["mechanism"]
    vis = visible(n_q, n_k, s["causal"])
    keep = torch.zeros(hq, n_q, n_k, dtype=torch.bool)
    if mech == "dense":
        return vis.expand(hq, n_q, n_k).clone()
    if mech == "bucket":
        def ids(x, heads, n, rnd):
            return [_core.bucket_ids(x[h].reshape(-1).tolist(), n, s["dim"], o["bucket_bits"], o["rounds"], o["bucket_fn"],
                                     o["seed"], rnd) for h in range(heads)]
        for rnd in range(o["rounds"]):
            qi, ki = ids(q64, hq, n_q, rnd), ids(k64, hkv, n_k, rnd)
            for h in range(hq):
                keep[h] |= torch.tensor(qi[h])[:, None] == torch.tensor(ki[h // group])[None, :]
        keep[hq - o["dense_heads"]:] = True  # mixed heads: the last ones dense
        return keep & vis
    if mech == "signature_topk":
        bits = o["bits"]
        for h in range(hq):
            for i in range(n_q):
                last = int(vis[i].nonzero().max()) if vis[i].any() else -1
                budget = o["top_k"] if o["top_k"] > 0 else math.ceil(o["top_fraction"] * (last + 1))
                fixed = [j for j in range(last + 1) if j < o["sinks"] or j > last - o["window"]]
                ranked = sorted((-popcount_similarity(q_sigs[h, i], k_sigs[h // group, j], bits), j)
                                for j in range(last + 1) if j not in fixed)
                for j in fixed + [j for _, j in ranked[:max(budget, 0)]]:
                    keep[h, i, j] = True
        return keep
    if mech == "index":
        tables = _core.sampled_bit_positions(o["bits"], o["tables"], o["bits_per_table"], o["seed"]) if o["tables"] else []
        for h in range(hq):
            for i in range(n_q):
                a = int(q_sigs[h, i]) & U64
                for j in range(n_k):
                    b = int(k_sigs[h // group, j]) & U64
                    if not tables:
                        keep[h, i, j] = a == b
                    else:
                        keep[h, i, j] = any(all((a >> p & 1) == (b >> p & 1) for p in t) for t in tables)
        return keep & vis
    raise AssertionError(f"no Python reference for mechanism {mech}: add one with its registry entry")


def masked_reference(q, k, v, keep, scale):
    """Dense softmax over the kept keys, in q's dtype; a query with no keys outputs zeros."""
    group = q.shape[0] // k.shape[0]
    kq, vq = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
    scores = (q @ kq.transpose(1, 2) * scale).masked_fill(~keep, float("-inf"))
    out = torch.softmax(scores, -1) @ vq
    return torch.where(keep.any(-1, keepdim=True), out, torch.zeros_like(out))


def run_op(case, q, k, v, q_sigs, k_sigs, scale):
    s, o = case["shape"], case["options"]
    hb = torch.ops.hashhop
    mech = case["mechanism"]
    if mech == "dense":
        return hb.dense_attention(q, k, v, None, s["causal"], scale)
    if mech == "bucket":
        return hb.bucket_attention(q, k, v, o["bucket_bits"], o["rounds"], o["bucket_fn"], o["seed"], s["causal"], scale,
                                   o["dense_heads"])
    if mech == "signature_topk":
        return hb.signature_attention(q, k, v, q_sigs, k_sigs, o["bits"], o["sinks"], o["window"], o["top_k"],
                                      o["top_fraction"], s["causal"], scale)
    if mech == "index":
        return hb.index_attention(q, k, v, q_sigs[..., 0].contiguous(), k_sigs[..., 0].contiguous(), o["bits"], o["tables"],
                                  o["bits_per_table"], o["seed"], s["causal"], scale)
    raise AssertionError(f"no op for mechanism {mech}")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_op_against_a_dense_float64_reference(case):
    s, o, tol = case["shape"], case["options"], case["tolerance"]
    g = torch.Generator().manual_seed(sum(map(ord, case["name"])))
    hq, hkv, n_q, n_k, dim = s["heads_q"], s["heads_kv"], s["n_q"], s["n_k"], s["dim"]
    q32 = torch.randn(hq, n_q, dim, generator=g)
    k32 = torch.randn(hkv, n_k, dim, generator=g)
    v32 = torch.randn(hkv, n_k, dim, generator=g)
    if s["identical_keys"]:
        k32 = k32[:, :1].expand(hkv, n_k, dim).contiguous()
    words = (o["bits"] + 63) // 64 if case["mechanism"] == "signature_topk" else 1
    q_sigs = draw_signatures(hq * n_q, words, o, g).view(hq, n_q, words)
    k_sigs = draw_signatures(hkv * n_k, words, o, g).view(hkv, n_k, words)
    q64, k64, v64 = q32.double(), k32.double(), v32.double()
    scale = 1 / math.sqrt(dim)

    keep = keep_mask(case, q64, k64, q_sigs, k_sigs)
    if case["expectation"] == "dense":  # the mechanism keeps every visible key here: its rule must say so too
        assert torch.equal(keep, visible(n_q, n_k, s["causal"]).expand_as(keep)), case["name"]
    ref64 = masked_reference(q64, k64, v64, keep, scale)
    ref32 = masked_reference(q32, k32, v32, keep, scale)

    out64 = run_op(case, q64, k64, v64, q_sigs, k_sigs, scale)
    assert (out64 - ref64).abs().max().item() <= tol["float64_abs"], case["name"]

    out32 = run_op(case, q32, k32, v32, q_sigs, k_sigs, scale)
    assert out32.dtype == torch.float32
    allowed = tol["lowprec_factor"] * (ref32.double() - ref64).abs().max().item() + tol["lowprec_abs"]
    assert (out32.double() - ref64).abs().max().item() <= allowed, case["name"]
