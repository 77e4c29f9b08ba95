# CPU tests of the decode API over batched KV caches (pyhashhop.ops.kv_cache_append / signature_decode / SignatureKVCache).
# Run: PYHASHHOP_TEST_STRICT=1 python -m pytest -q tests/python/test_kv_cache.py (make test-python does).
"""Tolerances: float64 inputs and the CPU ops' float64 selection, so outputs that attend over the same keys
agree to rounding: max |a - b| <= 1e-10 (one missing or extra key moves an output by ~1/n >= 1e-3)."""
import math

import pytest

from conftest import need

torch = need("torch")
from pyhashhop import ops  # noqa: E402  (needs torch, checked just above)

TOL = 1e-10


def randn(*shape, g):
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def filled_cache(prefix, chunks=(3, 1, 2), heads_kv=2, capacity=40, dim=16, bits=64, seed=0):
    """A cache whose sequences first get prefix[b] rows alone (appends on one-sequence views), then batched
    appends of `chunks` rows each, so the batched appends start from different lengths. Returns the cache
    and each sequence's rows (k, v, k_logits) in order."""
    g = torch.Generator().manual_seed(seed)
    batch = len(prefix)
    cache = ops.SignatureKVCache(batch, heads_kv, capacity, dim, bits, dtype=torch.float64)
    rows = lambda n: (randn(heads_kv, n, dim, g=g), randn(heads_kv, n, dim, g=g), randn(heads_kv, n, bits, g=g))  # noqa: E731
    given = [[] for _ in range(batch)]
    for b, n in enumerate(prefix):
        if n:
            k, v, lg = rows(n)
            views = (cache.k[b:b + 1], cache.v[b:b + 1], cache.signatures[b:b + 1], cache.lengths[b:b + 1])
            assert ops.kv_cache_append(*views, k[None], v[None], lg[None]).tolist() == [0]
            given[b].append((k, v, lg))
    for t in chunks:
        parts = [rows(t) for _ in range(batch)]
        stacked = [torch.stack([p[i] for p in parts]) for i in range(3)]
        assert cache.append(*stacked).tolist() == [0] * batch
        for b in range(batch):
            given[b].append(parts[b])
    joined = [tuple(torch.cat([part[i] for part in seq], 1) for i in range(3)) if seq else None for seq in given]
    return cache, joined


def test_appends_land_in_place_with_packed_signatures():
    cache, given = filled_cache([7, 0, 2])
    lengths = [13, 6, 8]
    assert cache.lengths.tolist() == lengths
    for b, (k, v, lg) in enumerate(given):
        n = lengths[b]
        assert torch.equal(cache.k[b, :, :n], k) and torch.equal(cache.v[b, :, :n], v)
        assert torch.equal(cache.signatures[b, :, :n], ops.pack_signatures(lg.reshape(-1, 64)).view(2, n, 1))
        assert (cache.k[b, :, n:] == 0).all(), "rows past the length stay untouched"


def test_rows_past_the_capacity_are_dropped_and_counted():
    g = torch.Generator().manual_seed(1)
    cache = ops.SignatureKVCache(2, 1, 6, 8, 70, dtype=torch.float64)
    cache.lengths[:] = torch.tensor([4, 0], dtype=torch.int32)
    k, v, lg = randn(2, 1, 3, 8, g=g), randn(2, 1, 3, 8, g=g), randn(2, 1, 3, 70, g=g)
    dropped = cache.append(k, v, lg)
    assert dropped.tolist() == [1, 0] and cache.lengths.tolist() == [6, 3]
    assert torch.equal(cache.k[0, :, 4:6], k[0, :, :2]) and torch.equal(cache.k[1, :, :3], k[1])
    assert cache.signatures.shape[-1] == 2  # 70 bits: two words


@pytest.mark.parametrize("heads_q", [2, 6])
def test_decode_keeping_every_key_is_dense_over_each_sequence(heads_q):
    cache, given = filled_cache([7, 0, 2], seed=3)
    g = torch.Generator().manual_seed(4)
    q, q_logits = randn(3, heads_q, 16, g=g), randn(3, heads_q, 64, g=g)
    out = cache.decode(q, q_logits, top_k=40)
    group = heads_q // 2
    for b, (k, v, _) in enumerate(given):
        kq, vq = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)  # head h reads kv head h // group
        want = torch.softmax((q[b][:, None] @ kq.transpose(1, 2)).squeeze(1) / math.sqrt(16), -1)[:, None] @ vq
        assert (out[b] - want.squeeze(1)).abs().max().item() <= TOL, f"sequence {b}"


def test_decode_with_top_k_equals_signature_attention_over_the_filled_rows():
    cache, given = filled_cache([24, 11, 3], seed=5)
    lengths = [30, 17, 9]
    g = torch.Generator().manual_seed(6)
    q, q_logits = randn(3, 4, 16, g=g), randn(3, 4, 64, g=g)
    args = dict(sinks=1, window=2, top_k=4)
    out = cache.decode(q, q_logits, **args)
    dense = cache.decode(q, q_logits, top_k=40)
    qs = ops.pack_signatures(q_logits.reshape(12, 64)).view(3, 4, 1)
    for b, (k, v, lg) in enumerate(given):
        ks = ops.pack_signatures(lg.reshape(-1, 64)).view(2, lengths[b], 1)
        want = ops.signature_attention(q[b][:, None], k, v, qs[b][:, None], ks, **args).squeeze(1)
        assert (out[b] - want).abs().max().item() <= TOL
        assert (out[b] - dense[b]).abs().max().item() > 1e-3, "top-4 of >= 9 keys must differ from dense"


def test_an_empty_sequence_decodes_to_zeros():
    cache, _ = filled_cache([4, 0], chunks=(), seed=7)
    g = torch.Generator().manual_seed(8)
    out = cache.decode(randn(2, 2, 16, g=g), randn(2, 2, 64, g=g), top_k=2)
    assert (out[1] == 0).all() and (out[0] != 0).any()


def test_lengths_outside_the_cache_are_clamped_first():
    g = torch.Generator().manual_seed(9)
    cache = ops.SignatureKVCache(3, 1, 6, 8, 64, dtype=torch.float64)
    cache.lengths.copy_(torch.tensor([-3, 11, 6], dtype=torch.int32))
    k, lg = randn(3, 1, 2, 8, g=g), randn(3, 1, 2, 64, g=g)
    assert cache.append(k, k, lg).tolist() == [0, 2, 2]
    assert cache.lengths.tolist() == [2, 6, 6]
    assert torch.equal(cache.k[0, :, :2], k[0])


def test_a_sequence_shorter_than_sinks_and_window_keeps_all_its_keys():
    cache, given = filled_cache([3, 0], chunks=(), seed=10)
    g = torch.Generator().manual_seed(11)
    q, q_logits = randn(2, 2, 16, g=g), randn(2, 2, 64, g=g)
    assert (cache.decode(q, q_logits, sinks=2, window=2) - cache.decode(q, q_logits, top_k=40)).abs().max().item() <= TOL


def test_bad_arguments_name_the_op_and_argument():
    cache = ops.SignatureKVCache(2, 2, 8, 16, 64, dtype=torch.float64)
    k = torch.randn(2, 2, 1, 16, dtype=torch.float64)
    lg = torch.randn(2, 2, 1, 64)
    with pytest.raises(RuntimeError, match="kv_cache_append: lengths must be int32"):
        ops.kv_cache_append(cache.k, cache.v, cache.signatures, cache.lengths.long(), k, k, lg)
    with pytest.raises(RuntimeError, match="kv_cache_append: k_logits: 128 bits need 2 words"):
        ops.kv_cache_append(cache.k, cache.v, cache.signatures, cache.lengths, k, k, torch.randn(2, 2, 1, 128))
    with pytest.raises(RuntimeError, match="kv_cache_append: k must be"):
        cache.append(k[:1], k[:1], lg[:1])
    with pytest.raises(RuntimeError, match="signature_decode: heads_q .3. must be a positive multiple of heads_kv .2."):
        cache.decode(torch.randn(2, 3, 16, dtype=torch.float64), torch.randn(2, 3, 64))
    with pytest.raises(RuntimeError, match="signature_decode: q must have the cache's dtype"):
        cache.decode(torch.randn(2, 2, 16), torch.randn(2, 2, 64))
    with pytest.raises(RuntimeError, match="kv_cache_append: lengths must be contiguous"):
        wide = torch.zeros(2, 2, dtype=torch.int32)
        ops.kv_cache_append(cache.k, cache.v, cache.signatures, wide[:, 0], k, k, lg)
    q, qs = torch.randn(2, 2, 16, dtype=torch.float64), torch.zeros(2, 2, 1, dtype=torch.int64)
    with pytest.raises(RuntimeError, match="signature_decode: sinks, window, top_k and top_fraction are all 0"):
        ops.signature_decode(q, qs, cache.k, cache.v, cache.signatures, cache.lengths)
    with pytest.raises(RuntimeError, match="signature_decode: sinks, window and top_k must fit in int32"):
        ops.signature_decode(q, qs, cache.k, cache.v, cache.signatures, cache.lengths, top_k=1 << 32)
    with pytest.raises(ValueError, match="SignatureKVCache: k_logits has 60 bits per row, the cache 64"):
        cache.append(k, k, torch.randn(2, 2, 1, 60))
