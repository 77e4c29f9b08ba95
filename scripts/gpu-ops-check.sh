#!/usr/bin/env bash
# Builds libhashhop_ops.so against the GPU machine's torch and calls torch.ops.hashhop.* from Python,
# on CUDA tensors, against PyTorch's scaled_dot_product_attention. Run there: scripts/gpu-ops-check.sh
# (carry .gpu-deps; scripts/gpu-deps.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
torch_dir=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
mkdir -p build-gpu-ops
g++ -O2 -std=c++20 -fPIC -shared -D_GLIBCXX_USE_CXX11_ABI=1 -Iinclude -I.gpu-deps/usr/include \
  -isystem "$torch_dir/include" -isystem "$torch_dir/include/torch/csrc/api/include" \
  src/ops/attention_ops.cpp src/ops/signature_maps.cpp src/attn/*.cpp src/bench/feistel.cpp -o build-gpu-ops/libhashhop_ops.so \
  -L"$torch_dir/lib" -ltorch_cpu -lc10 -Wl,-rpath,"$torch_dir/lib" .gpu-deps/usr/lib/libcrypto.a -ldl -pthread
python3 - <<'PY'
import torch
import torch.nn.functional as F
torch.ops.load_library("build-gpu-ops/libhashhop_ops.so")
torch.manual_seed(0)
dev = "cuda"
q = torch.randn(8, 64, 128, device=dev, requires_grad=True)
k = torch.randn(2, 64, 128, device=dev, requires_grad=True)
v = torch.randn(2, 64, 128, device=dev, requires_grad=True)
scale = 128 ** -0.5
ours = torch.ops.hashhop.dense_attention(q, k, v, None, True, scale)
ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)
print("dense vs SDPA (cuda, fp32, GQA 8/2, causal): max abs error %.2e" % (ours - ref).abs().max().item())
ours.sum().backward()
gq = q.grad.clone(); q.grad = None
ref.sum().backward()
print("grad q vs SDPA: max abs error %.2e" % (gq - q.grad).abs().max().item())
b = torch.ops.hashhop.bucket_attention(q, k, v, 0, 1, "lsh", 0, True, scale)
print("bucket (1 bucket) vs dense: max abs error %.2e" % (b - ours).abs().max().item())
b4 = torch.ops.hashhop.bucket_attention(q, k, v, 3, 2, "lsh_sha256", 1, True, scale)
print("bucket (8 buckets, 2 rounds) output", tuple(b4.shape), b4.device, "finite:", bool(torch.isfinite(b4).all()))
planes = torch.randn(128, 64, device=dev)
qs = torch.ops.hashhop.pack_signatures((q.detach() @ planes).reshape(-1, 64)).reshape(8, 64, 1)
ks = torch.ops.hashhop.pack_signatures((k.detach() @ planes).reshape(-1, 64)).reshape(2, 64, 1)
s_all = torch.ops.hashhop.signature_attention(q, k, v, qs, ks, 64, 0, 0, 64, 0.0, True, scale)
print("signature top-k (k = n) vs dense: max abs error %.2e" % (s_all - ours).abs().max().item())
s8 = torch.ops.hashhop.signature_attention(q, k, v, qs, ks, 64, 1, 4, 8, 0.0, True, scale)
s8.sum().backward()
print("signature top-k (sinks 1, window 4, k 8): finite %s, grad q finite %s" % (bool(torch.isfinite(s8).all()), bool(torch.isfinite(q.grad).all())))
same = torch.ops.hashhop.index_attention(q, k, v, torch.zeros(8, 64, dtype=torch.long, device=dev),
                                         torch.zeros(2, 64, dtype=torch.long, device=dev), 64, 0, 16, 0, True, scale)
print("index (all signatures equal) vs dense: max abs error %.2e" % (same - ours).abs().max().item())
lq = torch.randn(16, 128, device=dev, requires_grad=True)
loss = torch.ops.hashhop.signature_bce_loss(torch.ops.hashhop.sign_ste(lq @ planes), torch.ops.hashhop.sign_ste(k[0].detach() @ planes),
                                            lq.detach() @ k[0].detach().T, 4, 10.0, 0.5)
loss.backward()
print("signature_bce_loss on cuda: %.3f, grad through sign_ste nonzero: %s" % (loss.item(), bool(lq.grad.abs().sum() > 0)))
x = torch.tensor([-2.0, -0.5, 0.5, 2.0], device=dev, requires_grad=True)
torch.ops.hashhop.sign_ste(x).sum().backward()
print("sign_ste grad", x.grad.tolist())
print("pack_signatures", torch.ops.hashhop.pack_signatures(torch.randn(2, 70, device=dev)).shape)
try:
    torch.ops.hashhop.dense_attention(q[0], k, v, None, False, 1.0)
except RuntimeError as e:
    print("error check:", str(e).splitlines()[0])
PY
