#!/usr/bin/env python3
# A PyTorch twin of the byte model's 1-hop training (d 64, global RoPE blocks, canon convs, hashhop's optimiser,
# schedule and answer-byte loss), to compare initialisations outside the C++ code (learning-log section 14).
# Run: hashhop gen --chars 80 --hops 1 --hash-len 4 --queries 4 --seed 1000 --samples 40000 --out D.jsonl;
#      scripts/init-reference.py data=D.jsonl init=ours|torch|fanin [embed_std=0.02] [steps=600]  (needs torch)
#      data=synthetic:30-48 makes 1-hop records of 30-48 pairs of 8-letter hashes here (no hashhop build needed)
#      on a GPU: ... device=cuda dim=256 heads=8 layers=6 batch=64 lr=1e-3 seconds=400 metrics=M.jsonl
import itertools, json, math, sys, time, torch, torch.nn as nn, torch.nn.functional as F
args = dict(a.split('=') for a in sys.argv[1:])
torch.manual_seed(int(args.get('seed', 0))); torch.set_num_threads(int(args.get('threads', 1)))
DEV = torch.device(args.get('device', 'cpu')); SECONDS = float(args.get('seconds', 0))
METRICS = open(args['metrics'], 'w') if 'metrics' in args else None
D, H, L = int(args.get('dim', 64)), int(args.get('heads', 4)), int(args.get('layers', 3)); MLP = int(args.get('mlp', 2))
EMB = float(args.get('embed_std', 0.02)); CANON = int(args.get('canon', 4)); CBIAS = args.get('cbias', '1') == '1'
LR, B, STEPS = float(args.get('lr', 3e-3)), int(args.get('batch', 32)), int(args.get('steps', 600)); WARMUP = int(args.get('warmup', 50))
def sample(r):
    t = r['prompt'] + '\n' + r['completion']; b = t.encode()
    pos = []; firsts = []; start = t.index('COMPLETION:')
    i = start
    while True:
        q = t.find(" = '", i)
        if q < 0: break
        o = q + 3  # opening quote
        e = t.index("'", o + 1)
        firsts.append(len(pos)); pos += list(range(o, e))  # predict value bytes and closing quote
        i = e + 1
    return b, pos, firsts
# The file is read as a stream and cycled, so a GPU run can take more samples than fit in memory parsed.
def synthetic(rng, lo, hi, n_queries=8, hash_len=8):
    # data=synthetic:LO-HI: 1-hop records in `hashhop gen`'s layout (shuffled "KEY = 'VALUE'" lines, then the
    # completion block), LO-HI pairs of fresh 8-letter hashes each, made here so a GPU call needs no build.
    letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
    while True:
        n = rng.randint(lo, hi); hashes = []
        while len(hashes) < 2 * n:  # distinct, in drawing order (a set's order would follow PYTHONHASHSEED)
            h = ''.join(rng.choice(letters) for _ in range(hash_len))
            if h not in hashes: hashes.append(h)
        pairs = list(zip(hashes[:n], hashes[n:]))
        prompt = '\n'.join(f"{k} = '{v}'" for k, v in pairs)
        asked = rng.sample(pairs, min(n_queries, n))
        completion = 'COMPLETION:\nHops=1\n\nCoT=False\n\n' + ''.join(f"{k} = '{v}'\n" for k, v in asked)
        yield sample(dict(prompt=prompt, completion=completion))
if args['data'].startswith('synthetic:'):
    import random
    lo, hi = map(int, args['data'].split(':')[1].split('-'))
    data = synthetic(random.Random(int(args.get('seed', 0))), lo, hi)
else:
    data = (sample(json.loads(l)) for l in itertools.cycle(open(args['data']).readlines()))
class Canon(nn.Module):
    def __init__(s): super().__init__(); s.c = nn.Conv1d(D, D, CANON, groups=D, bias=CBIAS)
    def forward(s, x): return x + s.c(F.pad(x.transpose(1, 2), (CANON - 1, 0))).transpose(1, 2)
def rope(x):
    T, hd = x.shape[2], x.shape[3]; half = hd // 2
    inv = 10000 ** (-torch.arange(half, device=x.device) * 2.0 / hd)
    ang = torch.outer(torch.arange(T, device=x.device).float(), inv)
    c, s_ = ang.cos(), ang.sin(); x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s_, x1 * s_ + x2 * c], -1)
class Block(nn.Module):
    def __init__(s):
        super().__init__(); s.n1, s.n2 = nn.LayerNorm(D), nn.LayerNorm(D)
        s.q, s.k, s.v, s.o = [nn.Linear(D, D, bias=False) for _ in range(4)]
        s.up, s.down = nn.Linear(D, MLP * D), nn.Linear(MLP * D, D)
        s.c1, s.c2 = (Canon(), Canon()) if CANON else (nn.Identity(), nn.Identity())
    def forward(s, x):
        Bn, T, _ = x.shape; x = s.c1(x); y = s.n1(x)
        sp = lambda z: z.view(Bn, T, H, D // H).transpose(1, 2)
        a = F.scaled_dot_product_attention(rope(sp(s.q(y))), rope(sp(s.k(y))), sp(s.v(y)), is_causal=True)
        x = x + s.o(a.transpose(1, 2).reshape(Bn, T, D)); x = s.c2(x)
        return x + s.down(F.gelu(s.up(s.n2(x))))
class M(nn.Module):
    def __init__(s):
        super().__init__(); s.e = nn.Embedding(256, D); s.b = nn.ModuleList([Block() for _ in range(L)]); s.n = nn.LayerNorm(D); s.h = nn.Linear(D, 256)
        if args.get('init', 'ours') == 'ours':
            with torch.no_grad():
                s.e.weight.normal_(0, EMB)
                for n, p in s.named_parameters():
                    if p.dim() == 2 and not n.startswith('e.'): p.normal_(0, 0.02 / math.sqrt(2 * L) if ('.o.' in n or '.down.' in n) else 0.02)
        if args.get('init') == 'fanin':
            with torch.no_grad():
                s.e.weight.normal_(0, EMB)
                for n, p in s.named_parameters():
                    if p.dim() == 2 and not n.startswith('e.'):
                        std = 1 / math.sqrt(p.shape[1]); p.normal_(0, std / math.sqrt(2 * L) if ('.o.' in n or '.down.' in n) else std)
                    elif p.dim() == 1 and n.endswith('.bias') and not n.startswith('n.') and '.n1.' not in n and '.n2.' not in n:
                        p.zero_()  # linear and canon biases; LayerNorms keep theirs
    def forward(s, x):
        x = s.e(x)
        for b in s.b: x = b(x)
        return s.h(s.n(x))
if args.get('init', 'ours') not in ('ours', 'torch', 'fanin'):
    sys.exit(f"init={args['init']}: expected ours, torch or fanin (torch keeps PyTorch's draws, embedding N(0, 1); embed_std applies to the others)")
m = M().to(DEV)
dec = [p for n, p in m.named_parameters() if p.dim() == 2 and not n.startswith('e.')]
rest = [p for n, p in m.named_parameters() if not (p.dim() == 2 and not n.startswith('e.'))]
opt = torch.optim.AdamW([{'params': dec, 'weight_decay': 0.1}, {'params': rest, 'weight_decay': 0}], lr=LR, betas=(0.9, 0.95))
t0 = time.time(); seen_first = seen_right = 0
for step in range(STEPS):
    if SECONDS and time.time() - t0 > SECONDS: break
    lr = LR * min(1, (step + 1) / WARMUP) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / STEPS)))
    for g in opt.param_groups: g['lr'] = lr
    batch = [next(data) for _ in range(B)]; T = max(len(b) for b, _, _ in batch)
    x = torch.zeros(B, T, dtype=torch.long)
    rows, tg, first = [], [], []
    for i, (b, pos, firsts) in enumerate(batch):
        first += [len(rows) + f for f in firsts]
        x[i, :len(b)] = torch.tensor(list(b)); rows += [i * T + p for p in pos]; tg += [b[p + 1] for p in pos]
    x, rows, tg = x.to(DEV), torch.tensor(rows, device=DEV), torch.tensor(tg, device=DEV)
    with torch.autocast(DEV.type, dtype=torch.bfloat16, enabled=DEV.type == 'cuda'):
        logits = m(x).view(B * T, 256)[rows].float()
    loss = F.cross_entropy(logits, tg)
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
    right = logits.argmax(-1) == tg
    if (step + 1) % 10 == 0:
        seen_first += len(first); seen_right += right[torch.tensor(first, device=DEV)].sum().item()
    if (step + 1) % 100 == 0:  # first-byte accuracy over every 10th step of the last 100 (the lookup, not the copy)
        acc = right.float().mean().item(); fb = seen_right / max(1, seen_first)
        print(f"step {step + 1} loss {loss.item():.4f} byte {acc:.3f} first {fb:.3f} s {time.time() - t0:.0f}", flush=True)
        if METRICS: print(json.dumps(dict(step=step, loss=loss.item(), byte=acc, first_byte=fb, seconds=time.time() - t0)), file=METRICS, flush=True)
        seen_first = seen_right = 0
