#!/usr/bin/env bash
# The CPU study of docs/study/README.md: every row in its own resumable run directory under
# $OUT (default runs/study). Run it from the checkout; run it again to continue where it stopped
# (a session's processes end with the session; every stage resumes). Keep the machine free of
# other work while it runs: each row's wall time is part of the result. With STUDY_LOCK set to a
# file, each row holds an flock(1) on it while it runs (and its clock starts once the lock is
# held), so other work that takes the same lock, such as a build, waits between rows instead of
# slowing one down.
#   [FEWSHOT=BINARY] [STUDY_LOCK=FILE] docs/study/run.sh [OUT]
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
  if [ -n "${STUDY_LOCK:-}" ]; then exec 9>"$STUDY_LOCK"; flock 9; fi
  local start=$(date +%s.%N)
  "$@" > "$OUT/$name.log" 2>&1
  echo "$name,$(awk "BEGIN { print $(date +%s.%N) - $start }")" >> "$OUT/times.csv"
  if [ -n "${STUDY_LOCK:-}" ]; then exec 9>&-; fi
}

# Supernets at reduced fidelity (examples/cpu-protocol.toml) at one budget, three seeds:
# A = 10 epochs on 5,000 training images, B = 10 epochs on the whole training half.
supernets() {
  local budget=$1 knobs
  case $budget in
    A) knobs=(--epochs 10 --train-images 5000) ;;
    B) knobs=(--epochs 10) ;;
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
}

# The cheap rows first: budget A, the Table 1 splits at budget A, the proxies on the supernets'
# space; then budget B, the proxies on full NB201, and budget B's ensembles.
supernets A

# The zero-cost splits of the paper's Table 1 at budget A: FLOPs tertiles (three seeds), and
# tertiles of NASWOT (the number of linear regions) and of AZ-NAS's expressivity (feature
# isotropy), each scored over all 15,625 architectures of the supernets' space on a batch of 16
# (seed 0); and GM-NAS's gradient-matching split (one warm-up epoch of a one-shot supernet, seed 0).
for seed in 0 1 2; do
  for split in flops naswot isotropy gradmatch; do
    case $split in
      flops) spec=flops:k=3 ;;
      naswot) spec=proxy:score=naswot,k=3 ;;
      isotropy) spec=proxy:score=az.expressivity,k=3 ;;
      gradmatch) spec=gradmatch:k=3 ;;
    esac
    [ "$split" != flops ] && [ "$seed" != 0 ] && continue
    name=split-$split-A-seed$seed
    timed "$name" "$F" run --config examples/cpu-protocol.toml --splitter "$spec" --sampler sbs --epochs 10 --train-images 5000 \
      --set proxy.batch=16 --seed "$seed" --truth "$SAMPLE" --rank-archs 0 --out "$OUT/$name"
  done
done

# Proxies alone on the same 1,000 architectures, on the supernets' space (N=1, 16×16); on full
# NB201 (C=16, N=5, 32×32) after budget B.
for proxy in naswot synflow snip az; do
  timed "$proxy-reduced" "$F" score --proxy "$proxy" --space nb201:N=1 --resolution 16 --archs "$SAMPLE" \
    --data "$DATA" --output "$OUT/$proxy-reduced.csv"
done

# Training-free ensembles on the supernets' space: a whole `fewshot run` that trains nothing
# (scoring the 1,000, ranking, and an evolution scored the same way).
for estimator in az+synflow naswot+synflow; do
  timed "$estimator-reduced" "$F" run --config examples/cpu-protocol.toml --estimator "$estimator" \
    --truth "$SAMPLE" --rank-archs 0 --out "$OUT/$estimator-reduced"
done

supernets B

# The proxies alone on full NB201.
for proxy in naswot synflow snip az; do
  timed "$proxy-full" "$F" score --proxy "$proxy" --archs "$SAMPLE" --data "$DATA" --output "$OUT/$proxy-full.csv"
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
