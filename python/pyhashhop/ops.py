# Typed Python wrappers of torch.ops.hashhop.* (hash-based attention; CPU references, CUDA kernels in a GPU build).
# Usage: from pyhashhop import ops; out = ops.dense_attention(q, k, v). Importing this module needs torch.
"""Hash-based attention for PyTorch: thin wrappers over ``torch.ops.hashhop.*``.

Importing the module loads the op library shipped in the package (``pyhashhop/lib/libhashhop_ops.so``)
unless the ops are already registered (e.g. a build loaded by hand); ``PYHASHHOP_OPS_LIB`` points it at
another build (the GPU machine's CUDA variant). Shapes: ``q [heads_q, n_q, dim]`` and
``k, v [heads_kv, n_k, dim]`` (heads_q a multiple of heads_kv: grouped queries), or the same with a
leading batch dimension where the op accepts one. Errors are the ops' own, naming op and argument.

``scale=None`` means ``1/sqrt(dim)`` (the convention of ``torch.nn.functional.scaled_dot_product_attention``);
the underlying ops take an explicit scale.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import torch

LIBRARY: Path = Path(os.environ.get("PYHASHHOP_OPS_LIB", Path(__file__).parent / "lib" / "libhashhop_ops.so"))


def _registered() -> bool:
    try:
        torch.ops.hashhop.dense_attention  # noqa: B018 (resolving the op is the check)
        return True
    except (AttributeError, RuntimeError):
        return False


if not _registered():
    # A second copy of the library would register torch.ops.hashhop twice, which torch refuses.
    if not LIBRARY.is_file():
        raise ImportError(f"pyhashhop.ops: op library not found at {LIBRARY} (set PYHASHHOP_OPS_LIB)")
    torch.ops.load_library(str(LIBRARY))

_ops = torch.ops.hashhop


def _scale(q: torch.Tensor, scale: Optional[float]) -> float:
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_bias: Optional[torch.Tensor] = None,
                    causal: bool = False, scale: Optional[float] = None) -> torch.Tensor:
    """Exact softmax attention, the reference every other mechanism is checked against.

    ``key_bias [n_k]`` is added to every query's scores (e.g. a log-gate). Causal: query i sees keys up
    to ``n_k - n_q + i``. A query that sees no key outputs zeros. Differentiable in q, k, v, key_bias.
    """
    return _ops.dense_attention(q, k, v, key_bias, causal, _scale(q, scale))


def bucket_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bucket_bits: int = 4, rounds: int = 1,
                     bucket_fn: str = "lsh", seed: int = 0, causal: bool = False,
                     scale: Optional[float] = None, dense_heads: int = 0) -> torch.Tensor:
    """Softmax over the keys sharing the query's bucket in any of ``rounds`` hashing rounds.

    ``bucket_fn``: ``"lsh"`` (random hyperplanes), ``"lsh_sha256"`` or ``"quantized_sha256"``;
    ``2**bucket_bits`` buckets; the same ``seed`` gives the same buckets. Differentiable in q, k, v
    (the buckets are constants of the inputs). Mixed heads: the last ``dense_heads`` query heads (whole
    groups of ``heads_q // heads_kv``) attend to every visible key; on CUDA they run through PyTorch's SDPA.
    """
    return _ops.bucket_attention(q, k, v, bucket_bits, rounds, bucket_fn, seed, causal, _scale(q, scale), dense_heads)


def signature_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_signatures: torch.Tensor,
                        k_signatures: torch.Tensor, bits: int = 64, sinks: int = 0, window: int = 0, top_k: int = 0,
                        top_fraction: float = 0.0, causal: bool = False,
                        scale: Optional[float] = None) -> torch.Tensor:
    """HashAttention-style top-k: each query keeps ``sinks`` first keys, a recent ``window``, and its
    ``top_k`` keys (or ``top_fraction`` of its visible keys) by Hamming similarity of packed signatures,
    then attends exactly over them.

    ``q_signatures [heads_q, n_q, words]`` and ``k_signatures [heads_kv, n_k, words]`` are int64 words as
    ``pack_signatures`` makes them (``words = ceil(bits / 64)``). Differentiable in q, k, v.
    """
    return _ops.signature_attention(q, k, v, q_signatures, k_signatures, bits, sinks, window, top_k, top_fraction,
                                    causal, _scale(q, scale))


def index_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_signatures: torch.Tensor,
                    k_signatures: torch.Tensor, bits: int = 64, tables: int = 0, bits_per_table: int = 16,
                    seed: int = 0, causal: bool = False, scale: Optional[float] = None) -> torch.Tensor:
    """Attention over the keys a hash index returns for each query's signature: O(1) lookup.

    One signature word per key: ``q_signatures [heads_q, n_q]``, ``k_signatures [heads_kv, n_k]`` int64.
    ``tables=0`` keeps keys whose signature equals the query's; otherwise ``tables`` LSH tables of
    ``bits_per_table`` sampled bits (seeded) collect candidates. Differentiable in q, k, v.
    """
    return _ops.index_attention(q, k, v, q_signatures, k_signatures, bits, tables, bits_per_table, seed, causal,
                                _scale(q, scale))


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """sign(x) as +-1 (0 maps to +1); the backward passes gradients where ``|x| <= 1`` (straight-through)."""
    return _ops.sign_ste(x)


def pack_signatures(logits: torch.Tensor) -> torch.Tensor:
    """Bits ``logits >= 0`` of ``[n, bits]`` packed into ``[n, ceil(bits/64)]`` int64 words (bit b in word
    b // 64 at position b % 64), the layout signature_attention reads. Not differentiable."""
    return _ops.pack_signatures(logits)


def signature_bce_loss(q_signs: torch.Tensor, k_signs: torch.Tensor, dense_scores: torch.Tensor, top_k: int,
                       scale: float = 10.0, threshold: float = 0.5) -> torch.Tensor:
    """HashAttention's objective for learned signature maps: BCE of
    ``sigmoid(scale * (<sq_i, sk_j> / bits - threshold))`` against "key j is in query i's dense top_k".

    ``q_signs [n_q, bits]``, ``k_signs [n_k, bits]`` are +-1 (``sign_ste`` of the maps' logits);
    ``dense_scores [n_q, n_k]`` only defines the labels. Positives are up-weighted to balance them.
    """
    return _ops.signature_bce_loss(q_signs, k_signs, dense_scores, top_k, scale, threshold)


def kv_cache_append(k_cache: torch.Tensor, v_cache: torch.Tensor, signature_cache: torch.Tensor,
                    lengths: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_logits: torch.Tensor) -> torch.Tensor:
    """Appends ``k, v [batch, heads_kv, t, dim]`` to the caches at each sequence's length, packs the sign bits
    of ``k_logits [batch, heads_kv, t, bits]`` into ``signature_cache`` in the same pass, and advances
    ``lengths [batch]`` (int32). Everything is updated in place, on the caches' device, without a sync.

    Returns ``dropped [batch]`` (int32): rows that did not fit the capacity (zeros normally); read it when
    you synchronise anyway. A length outside ``[0, capacity]`` is clamped first. Not differentiable.
    """
    return _ops.kv_cache_append(k_cache, v_cache, signature_cache, lengths, k, v, k_logits)


def signature_decode(q: torch.Tensor, q_signatures: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     signature_cache: torch.Tensor, lengths: torch.Tensor, bits: int = 64, sinks: int = 0,
                     window: int = 0, top_k: int = 0, top_fraction: float = 0.0,
                     scale: Optional[float] = None) -> torch.Tensor:
    """One decode step for every sequence of a batched cache: ``q [batch, heads_q, dim]`` with packed
    ``q_signatures [batch, heads_q, words]``; sequence b reads rows ``[0, lengths[b])``, keeping its sinks,
    recent window and ``top_k`` keys (or ``top_fraction`` of its length) by Hamming similarity, exactly as
    ``signature_attention`` over the filled rows would (at least one of them must be non-zero). Returns
    ``[batch, heads_q, dim]``. Not differentiable. On CUDA the work is sized by the capacity, not the lengths
    (so a step can be captured in a CUDA graph): a cache far larger than its contents pays for its capacity.
    """
    return _ops.signature_decode(q, q_signatures, k_cache, v_cache, signature_cache, lengths, bits, sinks, window,
                                 top_k, top_fraction, _scale(q, scale))


class SignatureKVCache:
    """A batched KV cache with a signature cache beside it: what a serving loop calls once per token.

    >>> cache = SignatureKVCache(batch=8, heads_kv=8, capacity=1 << 20, dim=128, bits=64,
    ...                          dtype=torch.bfloat16, device="cuda")
    >>> cache.append(k, v, k_logits)            # prefill chunks or one new token per sequence
    >>> out = cache.decode(q, q_logits, top_k=2048, sinks=4, window=64)

    ``k_logits`` / ``q_logits`` are the learned signature maps' outputs (HashAttention's phi_k / phi_q),
    ``[batch, heads, t, bits]`` and ``[batch, heads_q, bits]``; their signs are the signature bits.
    """

    def __init__(self, batch: int, heads_kv: int, capacity: int, dim: int, bits: int = 64,
                 dtype: torch.dtype = torch.bfloat16, device: "torch.device | str" = "cpu") -> None:
        words = (bits + 63) // 64
        self.bits = bits
        self.k = torch.zeros(batch, heads_kv, capacity, dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.signatures = torch.zeros(batch, heads_kv, capacity, words, dtype=torch.int64, device=device)
        self.lengths = torch.zeros(batch, dtype=torch.int32, device=device)

    def _check_bits(self, logits: torch.Tensor, name: str) -> None:
        # The ops see only words; logits of another width would pack bits the decode does not count.
        if logits.shape[-1] != self.bits:
            raise ValueError(f"SignatureKVCache: {name} has {logits.shape[-1]} bits per row, the cache {self.bits}")

    def append(self, k: torch.Tensor, v: torch.Tensor, k_logits: torch.Tensor) -> torch.Tensor:
        """Appends ``t`` rows per sequence (see ``kv_cache_append``); returns the dropped counts."""
        self._check_bits(k_logits, "k_logits")
        return kv_cache_append(self.k, self.v, self.signatures, self.lengths, k, v, k_logits)

    def decode(self, q: torch.Tensor, q_logits: torch.Tensor, sinks: int = 0, window: int = 0, top_k: int = 0,
               top_fraction: float = 0.0, scale: Optional[float] = None) -> torch.Tensor:
        """One step for every sequence (see ``signature_decode``); ``q_logits [batch, heads_q, bits]``."""
        self._check_bits(q_logits, "q_logits")
        b, h, bits = q_logits.shape
        q_signatures = pack_signatures(q_logits.reshape(b * h, bits)).view(b, h, -1)
        return signature_decode(q, q_signatures, self.k, self.v, self.signatures, self.lengths, self.bits, sinks,
                                window, top_k, top_fraction, scale)


__all__ = ["LIBRARY", "dense_attention", "bucket_attention", "signature_attention", "index_attention", "sign_ste",
           "pack_signatures", "signature_bce_loss", "kv_cache_append", "signature_decode", "SignatureKVCache"]
