#!/usr/bin/env python3
"""PyTorch reference of supernet accuracy estimates on NAS-Bench-201: the speed yardstick of
`fewshot bench eval`.

The network is torch_score.py's (the semantics of ../shared/bench/torch_sbs_step.py): one supernet,
every architecture a subnet of it, BatchNorm without affine parameters on the statistics of each
evaluation batch (train mode, as fewshot and the EFS-NAS code evaluate), no gradients. Weights are
PyTorch's default initialisation: the cost of a forward pass does not depend on their values, so
no checkpoint is needed. Images: --images of DIR/test (class-balanced, seeded, torch_score.py's
loader), resized by box filter to --resolution, normalised, in batches of --batch.

Usage (Debian: `apt-get install -y python3-torch python3-pil`, then run with /usr/bin/python3):
  /usr/bin/python3 bench/torch_eval.py --archs archs.txt --channels 8 --cells 1 --resolution 16 \\
      --images 1000 --batch 250 --threads 2
matching `fewshot bench eval --run R --archs archs.txt --threads 2` on a run of
examples/cpu-protocol.toml (NB201 N=1 at channel divisor 2, 16x16, 1,000 test images, batches of 250).
Prints `RESULT archs=.. seconds=.. archs_per_s=..`, seconds being the evaluation wall time (no data
loading, no model construction).
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_score import REPO, Supernet, load_batch, parse_arch  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", required=True)
    p.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg"))
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--cells", type=int, default=1)
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    archs = [l.strip() for l in open(a.archs) if l.strip() and not l.strip().startswith("#")]
    if archs and "arch" in archs[0].split(","):
        # A CSV with an `arch` column (e.g. a truth table sample): keep that column.
        column = archs[0].split(",").index("arch")
        archs = [l.split(",")[column] for l in archs[1:]]
    archs = archs[: a.limit] if a.limit is not None else archs
    parsed = [parse_arch(s) for s in archs]
    x, y = load_batch(a.data, a.images, a.resolution, a.seed, split="test")
    batches = [(x[i : i + a.batch], y[i : i + a.batch]) for i in range(0, len(y), a.batch)]
    torch.manual_seed(a.seed)
    net = Supernet(a.channels, a.cells)
    net.train()
    t0 = time.perf_counter()
    with torch.no_grad():
        for i, arch in enumerate(parsed):
            correct = sum(int((net(xb, arch).argmax(1) == yb).sum()) for xb, yb in batches)
            if (i + 1) % max(1, len(parsed) // 10) == 0:
                print(f"[eval] {i + 1}/{len(parsed)} {time.perf_counter() - t0:.1f}s acc {100 * correct / len(y):.1f}%", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    n = len(parsed)
    print(f"RESULT archs={n} seconds={seconds:.3f} archs_per_s={n / seconds if seconds > 0 else 0:.3f}")


if __name__ == "__main__":
    main()
