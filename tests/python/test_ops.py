# CPU tests of pyhashhop.ops (torch.ops.hashhop.* loaded from the installed package) against each other.
# Run: PYHASHHOP_TEST_STRICT=1 python -m pytest -q tests/python/test_ops.py (needs torch; make test does).
"""Tolerances: the ops' CPU paths compute in float64 (inputs here are float64), so two mechanisms that
keep the same keys agree to rounding: max |a - b| <= 1e-10 (values are O(1); 1e-10 leaves room for
different summation orders, and one missing or extra key would move an output by ~1/n_k >= 1e-2)."""
import math

import pytest

from conftest import need

torch = need("torch")
from pyhashhop import ops  # noqa: E402  (needs torch, checked just above)

TOL = 1e-10


def qkv(heads_q=4, heads_kv=2, n_q=6, n_k=9, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(heads_q, n_q, dim, generator=g, dtype=torch.float64)
    k = torch.randn(heads_kv, n_k, dim, generator=g, dtype=torch.float64)
    v = torch.randn(heads_kv, n_k, dim, generator=g, dtype=torch.float64)
    return q, k, v


def max_diff(a, b):
    return (a - b).abs().max().item()


def test_ops_are_registered_from_the_package():
    assert hasattr(torch.ops.hashhop, "signature_attention")
    assert ops.LIBRARY.name == "libhashhop_ops.so"


@pytest.mark.parametrize("causal", [False, True])
def test_dense_matches_a_softmax_written_here(causal):
    q, k, v = qkv()
    out = ops.dense_attention(q, k, v, causal=causal)
    kq, vq = k.repeat_interleave(2, 0), v.repeat_interleave(2, 0)  # grouped queries: head h reads kv head h // 2
    scores = q @ kq.transpose(1, 2) / math.sqrt(16)
    if causal:
        n_q, n_k = q.shape[1], k.shape[1]
        mask = torch.arange(n_k)[None, :] > (torch.arange(n_q)[:, None] + n_k - n_q)
        scores = scores.masked_fill(mask, float("-inf"))
    assert max_diff(out, torch.softmax(scores, -1) @ vq) <= TOL
    assert max_diff(ops.dense_attention(q, k, v, scale=0.5), ops.dense_attention(q, k, v, scale=None)) > 1e-3


@pytest.mark.parametrize("causal", [False, True])
def test_signature_attention_keeping_every_key_is_dense(causal):
    q, k, v = qkv(seed=1)
    bits = 64
    q_sig = ops.pack_signatures(torch.randn(4 * 6, bits, dtype=torch.float64)).view(4, 6, 1)
    k_sig = ops.pack_signatures(torch.randn(2 * 9, bits, dtype=torch.float64)).view(2, 9, 1)
    out = ops.signature_attention(q, k, v, q_sig, k_sig, bits=bits, top_k=9, causal=causal)
    assert max_diff(out, ops.dense_attention(q, k, v, causal=causal)) <= TOL
    # Keeping fewer keys changes the output: the equality above is not vacuous.
    fewer = ops.signature_attention(q, k, v, q_sig, k_sig, bits=bits, top_k=2, causal=causal)
    assert max_diff(fewer, ops.dense_attention(q, k, v, causal=causal)) > 1e-3


def test_one_bucket_is_dense():
    q, k, v = qkv(seed=2)
    out = ops.bucket_attention(q, k, v, bucket_bits=0, rounds=1)
    assert max_diff(out, ops.dense_attention(q, k, v)) <= TOL
    many = ops.bucket_attention(q, k, v, bucket_bits=3, rounds=1)
    assert max_diff(many, ops.dense_attention(q, k, v)) > 1e-3


def test_index_with_one_shared_signature_is_dense():
    q, k, v = qkv(seed=3)
    same = torch.full((4, 6), 0x5A5A, dtype=torch.int64), torch.full((2, 9), 0x5A5A, dtype=torch.int64)
    out = ops.index_attention(q, k, v, *same, bits=64, tables=0)
    assert max_diff(out, ops.dense_attention(q, k, v)) <= TOL
    # Keys 0..4 share the queries' signature, keys 5..8 do not: exactly those five are attended.
    k_sig = torch.full((2, 9), 0x5A5A, dtype=torch.int64)
    k_sig[:, 5:] = 0x0F0F
    part = ops.index_attention(q, k, v, same[0], k_sig, bits=64, tables=0)
    assert max_diff(part, ops.dense_attention(q, k[:, :5], v[:, :5])) <= TOL


def test_pack_signatures_layout():
    logits = torch.full((2, 70), -1.0)
    logits[0, 0] = 1.0   # word 0, bit 0
    logits[0, 63] = 0.0  # word 0, bit 63 (logit >= 0 is a set bit)
    logits[1, 65] = 2.0  # word 1, bit 1
    packed = ops.pack_signatures(logits)
    assert packed.dtype == torch.int64 and packed.shape == (2, 2)
    assert packed[0].tolist() == [1 - 2**63, 0]  # bits 0 and 63 of a signed int64
    assert packed[1].tolist() == [0, 2]


def test_sign_ste_values_and_straight_through_gradient():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    y = ops.sign_ste(x)
    assert y.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_signature_bce_loss_prefers_signatures_that_agree_with_the_top_k():
    g = torch.Generator().manual_seed(4)
    n_q, n_k, bits, top_k = 8, 32, 64, 4
    dense = torch.randn(n_q, n_k, generator=g)
    top = dense.topk(top_k, dim=1).indices
    k_signs = torch.randn(n_k, bits, generator=g).sign()
    # Queries whose signs copy their top keys' majority agree with them: a low loss; random ones do not.
    good_q = k_signs[top].sum(1).sign()
    good_q[good_q == 0] = 1
    random_q = torch.randn(n_q, bits, generator=g).sign()
    good = ops.signature_bce_loss(good_q, k_signs, dense, top_k)
    bad = ops.signature_bce_loss(random_q, k_signs, dense, top_k)
    assert torch.isfinite(good) and torch.isfinite(bad) and good.item() < bad.item()


def test_errors_name_the_op():
    q, k, v = qkv()
    with pytest.raises(RuntimeError, match="dense_attention"):
        ops.dense_attention(q, k[:, :, :8], v)
