#!/usr/bin/env python3
"""Summarises a study directory written by docs/study/run.sh.

    docs/study/summarize.py OUT [PLOT.svg]

For every row in OUT/times.csv it takes Kendall's tau-b against the fixed sample: from the row's
rank.json (run rows: the estimator's tau) or, for a scores file, from `fewshot rank` (the same
code). An ensemble row of trained supernets (`ROW-supernet+...`) counts ROW's wall time too. Rows that differ only in their seed form one group: mean tau, spread (min..max) and mean
wall time. Prints the groups as a markdown table, writes OUT/results.csv (one line per row) and,
when asked, an SVG of tau against CPU minutes with the parameter-count baseline.

Rows measured before, whose run directories are gone, can be given in OUT/earlier.csv
(`row,tau,minutes`): they are listed and drawn marked with a dagger (hollow markers).
"""
import csv
import json
import math
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


times = dict(csv.reader(open(os.path.join(OUT, "times.csv"))))
rows = []
for name, seconds in times.items():
    t = tau_of(name)
    if t is None:
        continue
    group = re.sub(r"-seed\d+", "", name)
    minutes = float(seconds) / 60
    # An ensemble with trained supernets reuses its row's training: count that row's time too.
    base = name.split("-supernet+")[0]
    if base != name:
        minutes += float(times[base]) / 60
    rows.append({"row": name, "group": group, "tau": t[0], "params_tau": t[1], "minutes": minutes})

earlier = os.path.join(OUT, "earlier.csv")
if os.path.exists(earlier):
    for r in csv.DictReader(open(earlier)):
        rows.append({"row": r["row"] + " †", "group": r["row"] + " †", "tau": float(r["tau"]), "params_tau": None, "minutes": float(r["minutes"])})

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
    W, H, L, R, T, B = 900, 480, 60, 140, 30, 50
    # Minutes on a log scale: the rows span seconds to a quarter of an hour.
    xmin, xmax = 0.05, max(s[4] for s in summary) * 1.5
    ymin, ymax = min(-0.3, min(s[2] for s in summary) - 0.05), 0.85
    x = lambda m: round(L + (W - L - R) * math.log(max(m, xmin) / xmin) / math.log(xmax / xmin), 1)
    y = lambda t: round(T + (H - T - B) * (ymax - t) / (ymax - ymin), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">Kendall tau-b on 1,000 NB201 architectures against CPU minutes (2 cores)</text>',
             f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
             f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
             f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">wall time of the row (minutes, log scale)</text>',
             f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle">tau-b</text>']
    for m in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50):
        if m <= xmax:
            parts.append(f'<line x1="{x(m)}" y1="{T}" x2="{x(m)}" y2="{H - B}" stroke="#eee"/>')
            parts.append(f'<text x="{x(m)}" y="{H - B + 14}" text-anchor="middle">{m:g}</text>')
    t = -0.2 if ymin < -0.2 else 0.0
    while t <= ymax:
        parts.append(f'<line x1="{L}" y1="{y(t)}" x2="{W - R}" y2="{y(t)}" stroke="#ddd"/>')
        parts.append(f'<text x="{L - 6}" y="{y(t) + 4}" text-anchor="end">{t:.1f}</text>')
        t = round(t + 0.2, 1)
    if params is not None:
        parts.append(f'<line x1="{L}" y1="{y(params)}" x2="{W - R}" y2="{y(params)}" stroke="gray" stroke-dasharray="5,4"/>')
        parts.append(f'<text x="{W - R - 4}" y="{y(params) - 4}" text-anchor="end" fill="gray">params / FLOPs {params:.3f}</text>')
    placed = []  # label boxes already drawn, to move a label off an earlier one
    for g, mean, lo, hi, minutes in sorted(summary, key=lambda s: (s[4], -s[1])):
        # Blue: trained supernets (alone or in an ensemble); red: training-free.
        colour = "#1f77b4" if g.startswith(("efs", "fs", "spos", "split")) else "#d62728"
        fill = "white" if g.endswith("†") else colour
        parts.append(f'<line x1="{x(minutes)}" y1="{y(lo)}" x2="{x(minutes)}" y2="{y(hi)}" stroke="{colour}"/>')
        parts.append(f'<circle cx="{x(minutes)}" cy="{y(mean)}" r="4" fill="{fill}" stroke="{colour}"/>')
        lx, ly, width = x(minutes) + 6, y(mean) + 4, 6.2 * len(g)
        while any(abs(ly - py) < 12 and lx < px + pw and px < lx + width for px, py, pw in placed):
            ly += 12
        placed.append((lx, ly, width))
        parts.append(f'<text x="{lx}" y="{ly}">{g}</text>')
    parts.append("</svg>")
    with open(PLOT + ".tmp", "w") as f:
        f.write("\n".join(parts) + "\n")
    os.replace(PLOT + ".tmp", PLOT)
