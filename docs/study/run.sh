#!/usr/bin/env bash
# The CPU study of docs/study/README.md: every row in its own resumable run directory under
# $OUT (default runs/study). Run it from the checkout; run it again to continue where it stopped
# (a session's processes end with the session; every stage resumes). Keep the machine free of
# other work while it runs: each row's wall time is part of the result.
#   docs/study/run.sh [OUT]
set -euo pipefail
OUT=${1:-runs/study}
F=${FEWSHOT:-target/release/fewshot}
DATA=../shared/data/cifar10-jpeg
TRUTH=../shared/data/nb201/nb201.csv
mkdir -p "$OUT"

# The fixed sample: 1,000 rows of the truth table drawn with Python's random.Random(0).
SAMPLE="$OUT/truth1000.csv"
if [ ! -f "$SAMPLE" ]; then
  python3 - "$TRUTH" "$SAMPLE" <<'PY'
import csv, random, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sample = random.Random(0).sample(rows, 1000)
with open(sys.argv[2] + ".tmp", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=rows[0].keys()); w.writeheader(); w.writerows(sample)
import os; os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
fi

timed() { # name, command...: runs the command once, appending its wall time to $OUT/times.csv
  local name=$1; shift
  if grep -q "^$name," "$OUT/times.csv" 2>/dev/null; then return; fi
  local start=$(date +%s.%N)
  "$@" > "$OUT/$name.log" 2>&1
  echo "$name,$(awk "BEGIN { print $(date +%s.%N) - $start }")" >> "$OUT/times.csv"
}

# Supernets at reduced fidelity (examples/cpu-protocol.toml), two budgets, three seeds.
for budget in A B; do
  case $budget in
    A) knobs=(--epochs 10 --train-images 5000) ;;
    B) knobs=(--epochs 20) ;;
  esac
  for seed in 0 1 2; do
    for method in efs fs spos; do
      case $method in
        efs) split=(--splitter nonlin --sampler sbs) ;;
        fs) split=(--splitter edge-op --sampler sbs) ;;
        spos) split=(--splitter none --sampler uniform) ;;
      esac
      name=$method-$budget-seed$seed
      timed "$name" "$F" run --config examples/cpu-protocol.toml "${split[@]}" "${knobs[@]}" --seed "$seed" \
        --truth "$SAMPLE" --rank-archs 0 --out "$OUT/$name"
    done
  done
done

# Proxies alone on the same 1,000 architectures: full NB201 (C=16, N=5, 32×32) and the reduced
# space of the supernets (N=1, 16×16).
for proxy in naswot synflow snip az; do
  timed "$proxy-full" "$F" score --proxy "$proxy" --archs "$SAMPLE" --data "$DATA" --output "$OUT/$proxy-full.csv"
  timed "$proxy-reduced" "$F" score --proxy "$proxy" --space nb201:N=1 --resolution 16 --archs "$SAMPLE" \
    --data "$DATA" --output "$OUT/$proxy-reduced.csv"
done

# Ensembles: the trained supernets of each budget-B row with a proxy of the reduced space, summed
# by log-rank (a copy of the row's checkpoint and estimates; only the proxy is new work).
for seed in 0 1 2; do
  for method in efs fs spos; do
    for estimator in supernet+naswot supernet+naswot+synflow; do
      row=$method-B-seed$seed
      copy=$OUT/$row-$estimator
      if [ -f "$OUT/$row/best.json" ] && [ ! -d "$copy" ]; then
        mkdir -p "$copy"
        cp "$OUT/$row"/{checkpoint.safetensors,metrics.jsonl,predictions.csv} "$copy"/
      fi
      [ -d "$copy" ] && timed "$row-$estimator" "$F" run --config "$OUT/$row/config.toml" --estimator "$estimator" --out "$copy"
    done
  done
done
