#!/usr/bin/env bash
# Everything one short GPU window should do, in order, writing only under $OUT (at most 5 files,
# none deeper than $OUT/file, so that all of it comes back from the device machine):
#   1. env.txt          GPU name, driver, torch version
#   2. bench.json       benchmarks/bench_train.py on the GPU (plain / fp32 / bf16 / bf16+compile /
#                       5 seeds together, peak memory): issue "speed"
#   3. precision.tar.gz USPS quick, seeds 0 1 2, bf16 vs fp32 (trained together): purity within
#                       seed noise? (records in a scratch folder, not in results/)
#   4. records.tar.gz   python -m vitsom.gpu_queue with what is left of the budget: the next
#                       paper-profile runs that have no record yet (issue "GPU runs")
#   5. session.log      all of the above's output
#
# Prepare here (once per session; the data travel as an ignored, carried folder):
#   mkdir -p .gpu-data && cp -r ../shared/data/{mnist,fashion-mnist,usps} .gpu-data/
# Run on the device (device tool: carry [".gpu-data"], timeout_s a minute above BUDGET_S):
#   BUDGET_S=420 bash benchmarks/gpu_session.sh
# Back here: tar -xzf <files_at>/records.tar.gz (records land in results/paper/), commit them.
# Steps 2-3 are skipped with SKIP_BENCH=1 / SKIP_PRECISION=1 (e.g. once they have been measured).
set -u
BUDGET_S=${BUDGET_S:-420}
OUT=${OUT:?set OUT to the folder that comes back}
export PYTHONPATH=${PYTHONPATH:-.}
export PYTHONUNBUFFERED=1
export VITSOM_DATA=${VITSOM_DATA:-$PWD/.gpu-data}
export VITSOM_DOWNLOAD=0
PY=${PY:-python3}
start=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - start))); }
exec > >(tee -a "$OUT/session.log") 2>&1

echo "== gpu_session: budget ${BUDGET_S}s, data ${VITSOM_DATA}, commit $(git rev-parse --short HEAD 2>/dev/null)"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA')"
} > "$OUT/env.txt"
cat "$OUT/env.txt"

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  echo "== 1. training-speed benchmark ($(left)s left)"
  timeout 150 $PY benchmarks/bench_train.py --json "$OUT/bench.json" || echo "bench failed or timed out (rc $?)"
fi

if [ "${SKIP_PRECISION:-0}" != 1 ] && [ "$(left)" -gt 200 ]; then
  echo "== 2. bf16 vs fp32, USPS quick, seeds 0 1 2 ($(left)s left)"
  scratch=$(mktemp -d)
  for prec in bf16 fp32; do
    timeout 120 $PY -m vitsom train --preset usps-clustering --profile quick --seed 0 1 2 --together \
      --set train.precision=$prec --results "$scratch" --no-progress || echo "precision $prec failed (rc $?)"
  done
  $PY - "$scratch" <<'EOF'
import json, sys
from pathlib import Path
rows = {}
for p in Path(sys.argv[1]).rglob("*.json"):
    r = json.loads(p.read_text())
    rows.setdefault(r["config"]["train"]["precision"], []).append((r["seed"], r["metrics"]["purity"], r["metrics"]["nmi"]))
for prec, v in sorted(rows.items()):
    v.sort()
    print(prec, "purity per seed", [round(x[1], 4) for x in v], "nmi", [round(x[2], 4) for x in v])
EOF
  tar -czf "$OUT/precision.tar.gz" -C "$scratch" .
fi

echo "== 3. GPU queue: paper-profile runs without a record ($(left)s left)"
if [ "$(left)" -gt 60 ]; then
  $PY -m vitsom.gpu_queue --budget-s "$(( $(left) - 30 ))" --pack "$OUT/records.tar.gz"
fi
echo "== gpu_session done in $(( $(date +%s) - start ))s"
