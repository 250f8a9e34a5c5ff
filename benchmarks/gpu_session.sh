#!/usr/bin/env bash
# Everything one short GPU window should do, in order, writing only under $OUT (at most 6 files,
# none deeper than $OUT/file, so that all of it comes back from the device machine):
#   1. env.txt          GPU name, driver, torch version
#   2. probe.json       benchmarks/bench_train.py alone on the GPU first (MNIST 40×40 step: compiled,
#                       compiled with CUDA graphs, 5 seeds together compiled), from which
#                       `python -m vitsom.gpu_queue --strategy` picks the compile mode, one seed at a
#                       time or seeds together, and the number of shards for step 4 (PROBE=0 skips it)
#   3. precision.tar.gz USPS quick, seeds 0 1 2, bf16 vs fp32 (trained together): purity within
#                       seed noise? (records in a scratch folder, not in results/)
#   4. records.tar.gz   SHARDS processes of python -m vitsom.gpu_queue side by side (with step 3),
#                       each taking every SHARDS-th of the next paper-profile runs that have no
#                       record yet (issue "GPU runs")
#   5. bench.json       the benchmark's other rows (plain, eager fp32/bf16, seeds together eager), alone
#                       on the GPU at the end: issue "speed"
#   6. session.log      all of the above's output
#
# Prepare here (once per session; the data travel as an ignored, carried folder):
#   mkdir -p .gpu-data && cp -r ../shared/data/{mnist,fashion-mnist,usps} .gpu-data/
#   git rev-parse HEAD > .gpu-data/HEAD    # after committing: the device's .git may be older than
#                                          # the tree, so records name this commit instead
# Run on the device (device tool: carry [".gpu-data"], timeout_s a minute above BUDGET_S):
#   BUDGET_S=420 bash benchmarks/gpu_session.sh
# Back here: tar -xzf <files_at>/records.tar.gz (records land in results/paper/), `make summary` (the README's
# results table; a test fails until it is rewritten), then commit them together.
# Steps 3 and 5 are skipped with SKIP_PRECISION=1 / SKIP_BENCH=1 (e.g. once they have been measured).
# With PROBE=0, VITSOM_COMPILE_MODE, ONE_SEED and SHARDS (exported before the call) say how to train
# instead: e.g. VITSOM_COMPILE_MODE=reduce-overhead compiles every training run with CUDA graphs.
set -u
BUDGET_S=${BUDGET_S:-420}
OUT=${OUT:?set OUT to the folder that comes back}
export PYTHONPATH=${PYTHONPATH:-.}
export PYTHONUNBUFFERED=1
export VITSOM_DATA=${VITSOM_DATA:-$PWD/.gpu-data}
export VITSOM_DOWNLOAD=0
[ -f "$VITSOM_DATA/HEAD" ] && export VITSOM_GIT_COMMIT=$(cat "$VITSOM_DATA/HEAD")
PY=${PY:-python3}
start=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - start))); }
exec > >(tee -a "$OUT/session.log") 2>&1

echo "== gpu_session: budget ${BUDGET_S}s, compile mode ${VITSOM_COMPILE_MODE:-default}, data ${VITSOM_DATA}, commit ${VITSOM_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null)} (git here: $(git rev-parse --short HEAD 2>/dev/null))"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA')"
} > "$OUT/env.txt"
cat "$OUT/env.txt"

# The probe runs first and alone, so its timings are clean; the queue and the precision check then
# share the GPU (a small model leaves it mostly idle): SHARDS queue processes take every SHARDS-th
# pending run; the benchmark's other rows run last, alone.
if [ "${PROBE:-1}" = 1 ]; then
  echo "== 0. probe: the MNIST 40×40 step compiled, with CUDA graphs, 5 seeds together; alone on the GPU ($(left)s left)"
  timeout "${PROBE_S:-200}" $PY benchmarks/bench_train.py --rows default,default_cudagraphs,together_x5_compiled \
    --steps 200 --json "$OUT/probe.json" || echo "probe failed or timed out (rc $?): the rows it measured are used"
  # what the caller set explicitly wins over the probe's choice
  set_mode=${VITSOM_COMPILE_MODE:-}; set_one=${ONE_SEED:-}; set_shards=${SHARDS:-}
  eval "$($PY -m vitsom.gpu_queue --strategy "$OUT/probe.json")"
  VITSOM_COMPILE_MODE=${set_mode:-$VITSOM_COMPILE_MODE}; ONE_SEED=${set_one:-$ONE_SEED}; SHARDS=${set_shards:-$SHARDS}
  export VITSOM_COMPILE_MODE
  echo "== strategy: ${STRATEGY_WHY:-?}"
  echo "== training: compile mode $VITSOM_COMPILE_MODE, ONE_SEED=$ONE_SEED, $SHARDS shards"
fi
SHARDS=${SHARDS:-5}
# ONE_SEED=1 (default): shards split single seeds, each trained on the compiled single-model path;
# on 2026-11-27 (H200) the eager vmapped seeds-together step needed ~35 ms for 5 USPS models, too slow
# for a 500-epoch run in one window, while compiled single-model SOM runs took ~1.5 ms a step
one_seed=""; [ "${ONE_SEED:-1}" = 1 ] && one_seed="--one-seed-at-a-time"
BENCH_S=${BENCH_S:-110}
QUEUE_S=$(( $(left) - BENCH_S - 40 ))
logs=$(mktemp -d)
pids=""
# records say that their times were measured on a shared GPU (the book then does not compare them)
[ "$SHARDS" -gt 1 ] && export VITSOM_DEVICE_SHARED="$SHARDS gpu_queue processes side by side (benchmarks/gpu_session.sh)"
touch "$logs/start"
if [ "${SKIP_PRECISION:-0}" != 1 ]; then
  echo "== 1. bf16 vs fp32, USPS quick, seeds 0 1 2, beside the queue ($(left)s left)"
  scratch=$(mktemp -d)
  ( for prec in bf16 fp32; do
      OMP_NUM_THREADS=2 timeout 150 $PY -m vitsom train --preset usps-clustering --profile quick --seed 0 1 2 --together \
        --set train.precision=$prec --results "$scratch" --no-progress || echo "precision $prec failed (rc $?)"
    done
    $PY - "$scratch" <<'EOF2'
import json, sys
from pathlib import Path
rows = {}
for p in Path(sys.argv[1]).rglob("*.json"):
    r = json.loads(p.read_text())
    rows.setdefault(r["config"]["train"]["precision"], []).append((r["seed"], r["metrics"]["purity"], r["metrics"]["nmi"], r.get("wall_time_s")))
for prec, v in sorted(rows.items()):
    v.sort()
    print(prec, "purity per seed", [round(x[1], 4) for x in v], "nmi", [round(x[2], 4) for x in v], "wall", [x[3] for x in v])
EOF2
    tar -czf "$OUT/precision.tar.gz" -C "$scratch" . ) > "$logs/precision.log" 2>&1 &
  pids="$pids $!"
fi

echo "== 2. GPU queue in $SHARDS shards, ${QUEUE_S}s: paper-profile runs without a record ($(left)s left)"
for k in $(seq 0 $((SHARDS - 1))); do
  OMP_NUM_THREADS=2 $PY -m vitsom.gpu_queue --budget-s "$QUEUE_S" --shard "$k/$SHARDS" $one_seed > "$logs/queue-$k.log" 2>&1 &
  pids="$pids $!"
done
# a run projected to finish may still overrun (the shards slow each other down): stop them all
# in time to pack what finished, whatever happens
( sleep $(( QUEUE_S + BENCH_S )); echo "== watchdog: stopping the queue"; kill $pids 2>/dev/null ) &
watchdog=$!
wait $pids        # not a bare wait: that would also wait for the tee above, which never ends
kill $watchdog 2>/dev/null
for f in "$logs"/precision.log "$logs"/queue-*.log; do [ -f "$f" ] && { echo "---- $(basename "$f")"; cat "$f"; }; done
( cd "${VITSOM_RESULTS:-results}/.." && find results/paper -name '*.json' -newer "$logs/start" 2>/dev/null ) > "$logs/MANIFEST"
tar -czf "$OUT/records.tar.gz" -C "${VITSOM_RESULTS:-results}/.." -T "$logs/MANIFEST"
echo "== packed $(wc -l < "$logs/MANIFEST") new records"

if [ "${SKIP_BENCH:-0}" != 1 ] && [ "$(left)" -gt 40 ]; then
  echo "== 3. training-speed benchmark, alone on the GPU ($(left)s left)"
  b=$(( $(left) - 10 )); [ "$b" -gt "$BENCH_S" ] && b=$BENCH_S
  # rows in order of what the next window needs to know (each is saved as soon as it is measured);
  # the probe measured the compiled rows already
  if [ "${PROBE:-1}" = 1 ]; then rows=checkpoint,plain,fp32,bf16,together_x5
  else rows=default,default_cudagraphs,together_x5_compiled,checkpoint,plain,fp32,bf16,together_x5; fi
  BENCH_ROWS=${BENCH_ROWS:-$rows}
  timeout "$b" $PY benchmarks/bench_train.py --rows "$BENCH_ROWS" --json "$OUT/bench.json" || echo "bench failed or timed out (rc $?)"
fi
echo "== gpu_session done in $(( $(date +%s) - start ))s"
