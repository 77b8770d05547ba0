#!/usr/bin/env python3
"""PyTorch reference of four zero-cost NAS proxies on NAS-Bench-201: speed yardstick and cross-check.

Network (same semantics as ../shared/bench/torch_sbs_step.py): stem conv3x3(3->C, no bias)+BN, N cells
at C, ResNet block (stride 2) to 2C, N cells at 2C, ResNet block to 4C, N cells at 4C, BN+ReLU, global
average pool, linear (with bias). BN has no affine parameters and no running statistics (always batch
statistics). Edge ops: none / skip / ReLUConvBN 1x1 / ReLUConvBN 3x3 / avg_pool 3x3; a cell node with no
live input is zeros. ONE supernet (own modules for every candidate op of every edge) is built once after
torch.manual_seed(seed); every architecture runs as a subnet of it. Init: PyTorch default, except az:
conv/linear weights kaiming normal (fan_in, std sqrt(2/fan_in)), linear bias 0. Model in train mode.

Batch: B images of DIR/train (ImageFolder: class = sorted subfolder, files sorted by name); with
random.Random(seed), B//classes files per class (the remainder to the first classes) are drawn by
rng.sample (class 0 first; kept in draw order); the batch is class-interleaved (0,1,..,9,0,1,..).
RGB in 0..1, box-filter resize to --resolution if needed, per-channel normalisation.

Proxies:
  naswot  (Mellor et al. 2021): at the input x of every ReLU that runs, c = (x > 0) per image [B, D];
          K += c c^T + (1-c)(1-c)^T (float64); score = log|det K| (-inf when singular).
  az      (AZ-NAS, Lee & Ham 2024): F = [stem, every cell output, both ResNet blocks] (3N+3 maps).
          expressivity = sum_f entropy of the normalised eigenvalues of the channel covariance of f;
          progressivity = min_i (e[i+1] - e[i]); trainability = mean over consecutive pairs of
          -s - 1/(s+1e-6) + 2, s = top singular value of G_in^T G_out / (B*Ho*Wo) with Rademacher g_out
          (-inf if g_in == g_out); complexity = MACs of convs + linear (millions). NaN -> -inf.
          score = sum over the 4 components of log(rank/n), average ranks ascending over the file.
          Input: standard-normal noise of the batch's shape, as the AZ-NAS code (torch.randn).
          Covariances and eigenvalues in float64 (float32 gives spurious negative eigenvalues, NaN);
          the Rademacher draws use a generator reseeded with `seed` for every architecture.
  synflow (Tanaka et al. 2020): BN removed, float64, |params|, input ones[1,3,R,R], R = sum(logits);
          score = sum over conv/linear weights of theta * dR/dtheta.
  snip    (Lee et al. 2019): L = cross-entropy(logits, labels) (mean);
          score = sum over conv/linear weights of |theta * dL/dtheta|.

Usage (Debian: `apt-get install -y python3-torch python3-pil`, then run with /usr/bin/python3):
  /usr/bin/python3 bench/torch_score.py --proxy naswot --archs archs.txt --output naswot.csv
Options: --data DIR (default ../shared/data/cifar10-jpeg from the repo root) --batch 64 --channels 16
  --cells 5 --resolution 32 --threads 2 --seed 0 --limit N. The archs file has one NB201 string a line
(blank lines and lines starting with # ignored). Writes CSV `arch,score` (az: plus the 4 components),
prints progress to stderr and finally `RESULT proxy=.. archs=.. seconds=.. archs_per_s=..` to stdout,
where seconds is the scoring wall time (no data loading, no model construction).
"""
import argparse, copy, math, os, random, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
MEAN = [125.3 / 255, 123.0 / 255, 113.9 / 255]
STD = [63.0 / 255, 62.1 / 255, 66.7 / 255]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_arch(s):
    ops = []
    for node in s.strip("|").split("|+|"):
        for edge in node.strip("|").split("|"):
            ops.append(OPS.index(edge.split("~")[0]))
    assert len(ops) == 6, s
    return ops


# ---------------------------------------------------------------- network (as torch_sbs_step.py)
def bn(c):
    return nn.BatchNorm2d(c, affine=False, track_running_stats=False)


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin, cout, k, stride):
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), bn(cout))


class Edge(nn.Module):
    """All candidate ops of one cell edge; forward runs only the chosen one."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = ReLUConvBN(c, c, 1, 1)
        self.conv3 = ReLUConvBN(c, c, 3, 1)

    def forward(self, x, op):
        if op == 0:
            return None
        if op == 1:
            return x
        if op == 2:
            return self.conv1(x)
        if op == 3:
            return self.conv3(x)
        return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class Cell(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.edges = nn.ModuleList(Edge(c) for _ in range(6))

    def forward(self, x, arch):
        nodes, e = [x], 0
        for j in range(1, 4):
            acc = None
            for i in range(j):
                y = self.edges[e](nodes[i], arch[e])
                e += 1
                if y is not None:
                    acc = y if acc is None else acc + y
            nodes.append(acc if acc is not None else torch.zeros_like(x))
        return nodes[-1]


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.a = ReLUConvBN(cin, cout, 3, 2)
        self.b = ReLUConvBN(cout, cout, 3, 1)
        self.short = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.b(self.a(x)) + self.short(x)


class Supernet(nn.Module):
    def __init__(self, c, n, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), bn(c))
        layers, cp = [], c
        for stage, w in enumerate([c, 2 * c, 4 * c]):
            if stage:
                layers.append(ResBlock(cp, w))
                cp = w
            layers += [Cell(w) for _ in range(n)]
        self.layers = nn.ModuleList(layers)
        self.last = nn.Sequential(bn(cp), nn.ReLU())  # a module, so that naswot's hooks see it
        self.fc = nn.Linear(cp, classes)

    def forward(self, x, arch, feats=None):
        """Logits; if `feats` is a list, the stem, cell and ResNet-block outputs are appended to it."""
        x = self.stem(x)
        if feats is not None:
            feats.append(x)
        for layer in self.layers:
            x = layer(x, arch) if isinstance(layer, Cell) else layer(x)
            if feats is not None:
                feats.append(x)
        x = self.last(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def weight_layers(net):
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ---------------------------------------------------------------- data
def load_batch(root, b, res, seed, split="train"):
    train = os.path.join(root, split)
    classes = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
    rng, picks = random.Random(seed), []
    for k, c in enumerate(classes):
        files = sorted(f for f in os.listdir(os.path.join(train, c)) if f.lower().endswith((".jpg", ".jpeg")))
        count = b // len(classes) + (1 if k < b % len(classes) else 0)
        picks.append([os.path.join(train, c, f) for f in rng.sample(files, count)])
    order = [(k, p[r]) for r in range(max(map(len, picks))) for k, p in enumerate(picks) if r < len(p)]
    imgs = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0 for _, f in order]
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()
    h = x.shape[2]
    if res != h:
        x = F.avg_pool2d(x, h // res) if res < h and h % res == 0 else F.interpolate(x, size=(res, res), mode="area")
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return x, torch.tensor([k for k, _ in order])


# ---------------------------------------------------------------- proxies
def naswot(net, x, y, arch, ctx):
    b = x.shape[0]
    k = torch.zeros(b, b, dtype=torch.float64)

    def hook(module, inp):
        nonlocal k
        c = (inp[0].reshape(b, -1) > 0).float()
        # c c^T + (1-c)(1-c)^T = 2 c c^T - r 1^T - 1 r^T + D (r = row sums): one product, exact in
        # float32 (integers below 2^24), accumulated in float64. c c^T is taken as a 1x1 convolution,
        # which runs in oneDNN (Debian's torch does plain matmuls in the slow reference BLAS).
        r, cc = c.sum(dim=1, keepdim=True), F.conv2d(c.view(b, -1, 1, 1), c.view(b, -1, 1, 1)).view(b, b)
        k += (2 * cc - r - r.t() + c.shape[1]).double()

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(x, arch)
    finally:
        for h in handles:
            h.remove()
    return float(np.linalg.slogdet(k.numpy())[1])


def entropy_of_spectrum(f):
    # in float64: the maps of skip-heavy cells grow large, and float32 eigenvalues of their
    # ill-conditioned covariances come out negative (then log(p + 1e-8) is NaN)
    b, c, h, w = f.shape
    m = f.permute(0, 2, 3, 1).reshape(b * h * w, c).double()
    m = m - m.mean(dim=0, keepdim=True)
    s = torch.linalg.eigvalsh(m.t() @ m / m.shape[0])
    p = s / s.sum()
    return float((-p * torch.log(p + 1e-8)).sum())


def az(net, x, y, arch, ctx):
    flops = 0

    def count(module, inp, out):
        nonlocal flops
        flops += module.weight.numel() * (out.shape[2] * out.shape[3] if out.dim() == 4 else 1)

    handles = [m.register_forward_hook(count) for m in weight_layers(net)]
    feats = []
    try:
        net(x, arch, feats)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        e = np.array([entropy_of_spectrum(f) for f in feats])
    expressivity, progressivity = float(np.sum(e)), float(np.min(e[1:] - e[:-1]))
    gen, scores = torch.Generator().manual_seed(ctx["seed"]), []
    for i in reversed(range(1, len(feats))):
        f_in, f_out = feats[i - 1], feats[i]
        g_out = torch.bernoulli(torch.full_like(f_out, 0.5), generator=gen) * 2 - 1
        g_in = None
        if f_out.requires_grad and f_in.requires_grad:
            g_in = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)[0]
        if g_in is None:  # f_out does not depend on f_in (dead cell): zero gradient
            g_in = torch.zeros_like(f_in)
        if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
            scores.append(-math.inf)
            continue
        if g_in.shape[2] != g_out.shape[2]:
            g_in = F.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
        bo, co, ho, wo = g_out.shape
        go = g_out.permute(0, 2, 3, 1).reshape(bo * ho * wo, co)
        gi = g_in.permute(0, 2, 3, 1).reshape(bo * ho * wo, g_in.shape[1])
        sigma = float(torch.linalg.svdvals(gi.t() @ go / (bo * ho * wo)).max())
        scores.append(-sigma - 1 / (sigma + 1e-6) + 2)
    comps = [expressivity, progressivity, float(np.mean(scores)), flops / 1e6]
    return [-math.inf if math.isnan(v) else v for v in comps]


def synflow(net, x, y, arch, ctx):
    sn = ctx["synflow_net"]
    for p in sn.parameters():
        p.grad = None
    sn(torch.ones(1, *x.shape[1:], dtype=torch.float64), arch).sum().backward()
    with torch.no_grad():
        return float(sum((m.weight * m.weight.grad).sum() for m in weight_layers(sn) if m.weight.grad is not None))


def snip(net, x, y, arch, ctx):
    for p in net.parameters():
        p.grad = None
    F.cross_entropy(net(x, arch), y).backward()
    with torch.no_grad():
        return float(sum((m.weight * m.weight.grad).abs().sum() for m in weight_layers(net) if m.weight.grad is not None))


def average_ranks(v):
    """Ascending ranks 1..n, ties get their average rank (scipy.stats.rankdata 'average')."""
    v = np.asarray(v, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    ranks, sv, i = np.empty(len(v)), v[order], 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


# ---------------------------------------------------------------- main
def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--proxy", required=True, choices=["naswot", "az", "synflow", "snip"])
    p.add_argument("--archs", required=True)
    p.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg"))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells", type=int, default=5)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="CSV path (default torch_score_<proxy>.csv)")
    p.add_argument("--limit", type=int, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    archs = [l.strip() for l in open(a.archs) if l.strip() and not l.strip().startswith("#")]
    archs = archs[: a.limit] if a.limit is not None else archs
    parsed = [parse_arch(s) for s in archs]
    x, y = load_batch(a.data, a.batch, a.resolution, a.seed)
    if a.proxy == "az":
        # The AZ-NAS code scores NB201 on standard-normal noise, not on images.
        x = torch.randn(x.shape, generator=torch.Generator().manual_seed(a.seed))

    torch.manual_seed(a.seed)
    net = Supernet(a.channels, a.cells)
    if a.proxy == "az":
        for m in weight_layers(net):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    net.train()
    ctx = {"seed": a.seed}
    if a.proxy == "synflow":
        sn = copy.deepcopy(net).double()
        for name, m in list(sn.named_modules()):
            for child_name, child in list(m.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(m, child_name, nn.Identity())
        with torch.no_grad():
            for q in sn.parameters():
                q.abs_()
        ctx["synflow_net"] = sn
    score_fn = {"naswot": naswot, "az": az, "synflow": synflow, "snip": snip}[a.proxy]

    results, step = [], max(1, len(parsed) // 10)
    t0 = time.perf_counter()
    for i, arch in enumerate(parsed):
        results.append(score_fn(net, x, y, arch, ctx))
        if (i + 1) % step == 0 or i + 1 == len(parsed):
            print(f"[{a.proxy}] {i + 1}/{len(parsed)} {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0

    out = a.output or f"torch_score_{a.proxy}.csv"
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        if a.proxy == "az":
            comps = np.array(results, dtype=np.float64)
            n = len(results)
            agg = sum(np.log(average_ranks(comps[:, j]) / n) for j in range(4)) if n else []
            f.write("arch,score,expressivity,progressivity,trainability,complexity\n")
            for s, total, c in zip(archs, agg, results):
                f.write(",".join([s, repr(float(total))] + [repr(float(v)) for v in c]) + "\n")
        else:
            f.write("arch,score\n")
            for s, v in zip(archs, results):
                f.write(f"{s},{v!r}\n")
    os.replace(tmp, out)
    n = len(parsed)
    print(f"RESULT proxy={a.proxy} archs={n} seconds={seconds:.3f} archs_per_s={n / seconds if seconds > 0 else 0:.3f}")


if __name__ == "__main__":
    main()
