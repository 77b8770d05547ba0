#!/usr/bin/env python3
"""PyTorch yardstick of one SBS training step over fewshot's MobileNet space.

Mirrors `fewshot bench step --space mobilenet:classes=C,resolution=R --archs FILE`: K independent
supernets of the ProxylessNAS-style MobileNet space (plugins/src/mobilenet.rs) at channel divisor
c (default 2), BatchNorm without affine parameters and running statistics (fewshot's `plain`
norm); a fixed batch of random normal images and random labels; per step one line of FILE
(column k = the subnet supernet k trains), only the chosen op of each layer runs (identity passes
through), the K plain cross-entropy losses are summed, one backward, one SGD step (lr 0.025,
momentum 0.9, Nesterov, weight decay 5e-4; parameters without a gradient are left alone, as
fewshot's default `idle = frozen`).

Graph, as fewshot resolves it at divisor c (w(n) = max(1, round(n / c)), round half away from 0):
stem conv3x3 s2 p1 3->w(32) + BN + act; first block MBConv(3x3, e1) w(32)->w(16) without expand
conv; 21 searchable layers in stages (width, layers, stride) = (32,4,2) (40,4,2) (80,4,2)
(96,4,1) (192,4,2) (320,1,1), options 3x3/5x5/7x7 x e3/e6 (+ identity except in a stage's first
layer); head conv1x1 w(320)->w(1280) + BN + act, global average pool, linear w(1280)->classes
with bias. MBConv(k, e) on C_in: hidden = w(C_in) * e; [conv1x1 + BN + act] + depthwise kxk
(stride s, padding k//2) + BN + act + conv1x1 -> w(C_out) + BN, residual add iff s = 1 and
C_in = C_out. Only the linear layer has a bias.

Verified against fewshot (target/release/fewshot, at classes=10, resolution=32):
- Parameters per supernet at divisor 2: 4,002,914 here; `fewshot train --space
  mobilenet:classes=10,resolution=32 --channel-divisor 2` writes `"parameters_per_supernet":
  4002914` to train_config.json, and every one of the 384 tensors of `net0/` in its
  checkpoint.safetensors has the shape of the corresponding parameter here.
- `--costs` prints `arch,flops_m,params_mb` in fewshot's conventions (BN counted with 2 affine
  parameters per channel, multiply-adds of convs and the linear layer); for 30 random
  architectures at divisors 1 and 2 and resolutions 32 and 64 (and 180 at divisor 1,
  resolution 32) it equals `fewshot costs --space mobilenet:classes=10,resolution=R --arch A
  --channel-divisor c` byte for byte (this also checks strides, paddings and map sizes).

Usage: /usr/bin/python3 torch_mobilenet_step.py --archs FILE --threads 2 [--resolution 64]
The fewshot side of the ratio (its default K is 3, and without --archs it draws its own plan):
  fewshot bench step --space mobilenet:classes=10,resolution=32 --archs FILE --supernets 6
    --channel-divisor 2 --threads 2
Run both on an idle machine: with 2 threads on 2 busy cores torch's OpenMP slows 5-20x.
Prints a header naming the workload, then `RESULT ms_per_step=<median> images_per_s=<...>
min_ms=<...> max_ms=<...>` over the timed steps.
"""
import argparse, collections, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F

OPS = ["3x3e3", "3x3e6", "5x5e3", "5x5e6", "7x7e3", "7x7e6", "identity"]
IDENTITY = 6
STAGES = [(32, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)]
STEM, FIRST_BLOCK_OUT, HEAD = 32, 16, 1280
ACTIVATIONS = {"relu6": nn.ReLU6, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU,
               "sigmoid": nn.Sigmoid, "silu": nn.SiLU}


def layers():
    """The 21 searchable layers as (c_in, c_out, stride, first_in_stage), full width."""
    out, c_in = [], FIRST_BLOCK_OUT
    for width, count, stride in STAGES:
        for i in range(count):
            out.append((c_in, width, stride if i == 0 else 1, i == 0))
            c_in = width
    return out


def parse_arch(text):
    """fewshot's MobileNet text form: 21 option names joined by `-`."""
    tokens = text.strip().split("-")
    assert len(tokens) == 21, f"expected 21 layer choices in {text}"
    arch = [OPS.index(t) for t in tokens]
    for choice, (_, _, _, first) in zip(arch, layers()):
        assert not (first and choice == IDENTITY), f"identity in a stage's first layer: {text}"
    return arch


def bn(c):
    return nn.BatchNorm2d(c, affine=False, track_running_stats=False)


def seq(**modules):
    return nn.Sequential(collections.OrderedDict(modules))


class MBConv(nn.Module):
    """Inverted residual; `w` resolves a full width at the divisor."""

    def __init__(self, w, act, c_in, c_out, kernel, expand, stride):
        super().__init__()
        cin, hidden = w(c_in), w(c_in) * expand
        if expand != 1:
            self.expand = seq(conv=nn.Conv2d(cin, hidden, 1, bias=False), bn=bn(hidden), act=act())
        self.depthwise = seq(dwconv=nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2,
                                              groups=hidden, bias=False), bn=bn(hidden), act=act())
        self.project = seq(conv=nn.Conv2d(hidden, w(c_out), 1, bias=False), bn=bn(w(c_out)))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.expand(x) if hasattr(self, "expand") else x
        y = self.project(self.depthwise(y))
        return y + x if self.residual else y


class Supernet(nn.Module):
    def __init__(self, divisor, classes, act):
        super().__init__()
        w = lambda n: max(1, int(n / divisor + 0.5))  # Rust's f64::round on positive widths
        self.stem = seq(conv=nn.Conv2d(3, w(STEM), 3, 2, 1, bias=False), bn=bn(w(STEM)), act=act())
        self.first_block = MBConv(w, act, STEM, FIRST_BLOCK_OUT, 3, 1, 1)
        self.layers = nn.ModuleList(
            nn.ModuleDict({OPS[o]: MBConv(w, act, c_in, c_out, int(OPS[o][0]), int(OPS[o][-1]), s)
                           for o in range(IDENTITY)})
            for c_in, c_out, s, _ in layers())
        self.head = seq(conv=nn.Conv2d(w(STAGES[-1][0]), w(HEAD), 1, bias=False), bn=bn(w(HEAD)),
                        act=act())
        self.linear = nn.Linear(w(HEAD), classes)

    def forward(self, x, arch):
        x = self.first_block(self.stem(x))
        for options, choice in zip(self.layers, arch):
            if choice != IDENTITY:  # only the chosen op runs
                x = options[OPS[choice]](x)
        return self.linear(self.head(x).mean((2, 3)))


def costs(net, arch, resolution):
    """(multiply-adds, parameters) of a subnet in fewshot's `costs` conventions."""
    total = [0, 0]

    def hook(module, _, out):
        if isinstance(module, nn.BatchNorm2d):
            total[1] += 2 * out.shape[1]
            return
        n = sum(p.numel() for p in module.parameters())
        total[0] += n * (out.shape[2] * out.shape[3] if out.dim() == 4 else 1)
        total[1] += n

    hooks = [m.register_forward_hook(hook) for m in net.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))]
    with torch.no_grad():
        net(torch.zeros(2, 3, resolution, resolution), arch)
    for h in hooks:
        h.remove()
    return total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--archs", required=True, help="one line per step, K MobileNet archs per line")
    p.add_argument("--supernets", type=int, default=6)
    p.add_argument("--divisor", type=float, default=2.0)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu6")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--costs", action="store_true",
                   help="print `arch,flops_m,params_mb` of every distinct arch (as `fewshot costs`)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    act = ACTIVATIONS[a.activation]
    lines = [l.split() for l in open(a.archs) if l.strip() and not l.startswith("#")]
    assert all(len(l) >= a.supernets for l in lines), f"need {a.supernets} archs on every line"
    plan = [[parse_arch(s) for s in l[: a.supernets]] for l in lines]
    if a.costs:
        net = Supernet(a.divisor, a.classes, act)
        print("arch,flops_m,params_mb")
        for text in dict.fromkeys(s for l in lines for s in l[: a.supernets]):
            flops, params = costs(net, parse_arch(text), a.resolution)
            print(f"{text},{flops / 1e6},{params / 1e6}")  # shortest repr, as Rust prints f64
        return
    dev = torch.device(a.device)
    nets = [Supernet(a.divisor, a.classes, act).to(dev) for _ in range(a.supernets)]
    params = [q for n in nets for q in n.parameters()]
    opt = torch.optim.SGD(params, lr=0.025, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, a.resolution, a.resolution, device=dev)
    y = torch.randint(0, a.classes, (a.batch,), device=dev)
    times = []
    for step in range(a.warmup + a.steps):
        archs = plan[step % len(plan)]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = sum(F.cross_entropy(net(x, arch), y) for net, arch in zip(nets, archs))
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if step >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    med = statistics.median(times)
    print(f"torch {torch.__version__} mobilenet:classes={a.classes},resolution={a.resolution},"
          f"activation={a.activation} device={a.device} threads={a.threads} K={a.supernets} "
          f"divisor={a.divisor} batch={a.batch} steps={a.steps} warmup={a.warmup} "
          f"params_per_supernet={sum(q.numel() for q in nets[0].parameters())}")
    print(f"RESULT ms_per_step={med:.1f} images_per_s={a.batch / med * 1000:.1f} "
          f"min_ms={min(times):.1f} max_ms={max(times):.1f}")


if __name__ == "__main__":
    main()
