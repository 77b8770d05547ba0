#!/usr/bin/env python3
"""Summarises a study directory written by docs/study/run.sh.

    docs/study/summarize.py OUT [PLOT.svg]

For every row in OUT/times.csv it takes Kendall's tau-b against the fixed sample: from the row's
rank.json (run rows: the estimator's tau) or, for a scores file, from `fewshot rank` (the same
code). Rows that differ only in their seed form one group: mean tau, spread (min..max) and mean
wall time. Prints the groups as a markdown table, writes OUT/results.csv (one line per row) and,
when asked, an SVG of tau against CPU minutes with the parameter-count baseline.
"""
import csv
import json
import os
import re
import subprocess
import sys

OUT = sys.argv[1]
PLOT = sys.argv[2] if len(sys.argv) > 2 else None
FEWSHOT = os.environ.get("FEWSHOT", "target/release/fewshot")
SAMPLE = os.path.join(OUT, "truth1000.csv")


def tau_of(name):
    """(tau of the row's estimator, tau of params) or None when the row has no result."""
    rank = os.path.join(OUT, name, "rank.json")
    if os.path.exists(rank):
        r = json.load(open(rank))
        params = next(b for b in r["baselines"] if b["name"] == "params")
        return r["predictor"]["overall"]["kendall_tau_b"], params["overall"]["kendall_tau_b"]
    scores = os.path.join(OUT, name + ".csv")
    if os.path.exists(scores):
        text = subprocess.run(
            [FEWSHOT, "rank", "--pred", scores, "--pred-column", "score", "--truth", SAMPLE, "--format", "json"],
            check=True, capture_output=True, text=True,
        ).stdout
        r = json.loads(text)
        params = next((b for b in r.get("baselines", []) if b["name"] == "params"), None)
        return r["predictor"]["overall"]["kendall_tau_b"], params and params["overall"]["kendall_tau_b"]
    return None


rows = []
for name, seconds in csv.reader(open(os.path.join(OUT, "times.csv"))):
    t = tau_of(name)
    if t is None:
        continue
    group = re.sub(r"-seed\d+", "", name)
    rows.append({"row": name, "group": group, "tau": t[0], "params_tau": t[1], "minutes": float(seconds) / 60})

with open(os.path.join(OUT, "results.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["row", "group", "tau", "params_tau", "minutes"])
    w.writeheader()
    w.writerows(rows)

groups = {}
for r in rows:
    groups.setdefault(r["group"], []).append(r)
print("| row | seeds | tau-b mean | spread (min..max) | minutes per row (mean) |")
print("| --- | --- | --- | --- | --- |")
summary = []
for g, rs in groups.items():
    taus = [r["tau"] for r in rs]
    mean = sum(taus) / len(taus)
    minutes = sum(r["minutes"] for r in rs) / len(rs)
    spread = f"{min(taus):.3f}..{max(taus):.3f}" if len(taus) > 1 else "-"
    print(f"| `{g}` | {len(rs)} | {mean:.3f} | {spread} | {minutes:.1f} |")
    summary.append((g, mean, min(taus), max(taus), minutes))

if PLOT:
    params = next((r["params_tau"] for r in rows if r["params_tau"] is not None), None)
    W, H, L, R, T, B = 760, 460, 60, 20, 30, 50
    xmax = max(s[4] for s in summary) * 1.1
    ymin, ymax = min(-0.3, min(s[2] for s in summary) - 0.05), 0.85
    x = lambda m: round(L + (W - L - R) * m / xmax, 1)
    y = lambda t: round(T + (H - T - B) * (ymax - t) / (ymax - ymin), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">Kendall tau-b on 1,000 NB201 architectures against CPU minutes (2 cores)</text>',
             f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
             f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
             f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">wall time of the row (minutes)</text>',
             f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle">tau-b</text>']
    step = next(s for s in (0.5, 1, 2, 5, 10, 20, 50, 100) if xmax / s <= 10)
    m = 0.0
    while m <= xmax:
        parts.append(f'<text x="{x(m):.1f}" y="{H - B + 14}" text-anchor="middle">{m:g}</text>')
        m += step
    t = -0.2 if ymin < -0.2 else 0.0
    while t <= ymax:
        parts.append(f'<line x1="{L}" y1="{y(t)}" x2="{W - R}" y2="{y(t)}" stroke="#ddd"/>')
        parts.append(f'<text x="{L - 6}" y="{y(t) + 4}" text-anchor="end">{t:.1f}</text>')
        t = round(t + 0.2, 1)
    if params is not None:
        parts.append(f'<line x1="{L}" y1="{y(params)}" x2="{W - R}" y2="{y(params)}" stroke="gray" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{W - R - 4}" y="{y(params) - 4}" text-anchor="end" fill="gray">params / FLOPs {params:.3f}</text>')
    for g, mean, lo, hi, minutes in summary:
        colour = "#1f77b4" if g.startswith(("efs", "fs", "spos", "split")) else "#d62728"
        parts.append(f'<line x1="{x(minutes)}" y1="{y(lo)}" x2="{x(minutes)}" y2="{y(hi)}" stroke="{colour}"/>')
        parts.append(f'<circle cx="{x(minutes)}" cy="{y(mean)}" r="4" fill="{colour}"/>')
        parts.append(f'<text x="{x(minutes) + 6}" y="{y(mean) + 4}">{g}</text>')
    parts.append("</svg>")
    with open(PLOT + ".tmp", "w") as f:
        f.write("\n".join(parts) + "\n")
    os.replace(PLOT + ".tmp", PLOT)
