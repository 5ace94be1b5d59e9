#!/usr/bin/env bash
# The device check behind docs/gpu.md (issue 13), run from the repository root on a machine with
# CUDA: the environment, a determinism probe, the CPU/CUDA step sweep behind `--device auto`, whole
# `bnnames train` runs on each device, eval on each device, then the whole test suite
# (sweep also times a CUDA graph of the fast step: benchmarks/cuda_graph.py).
#
#   bash benchmarks/gpu_check.sh NAMES_TXT [PART ...]   (parts: env sweep table suite; default all)
#
# Logs go to $OUT (or ./gpu-check-out). Each part has its own time limit, so one slow part cannot
# eat the others'.
set -u
DATA=$(realpath "$1")
shift
PARTS=${*:-env sweep table suite}
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
export BNNAMES_TEST_DATA=$DATA PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
TIMEFORMAT='%R s wall'
RUNS=$(mktemp -d)

train() {  # train LABEL ARGS...: one whole `bnnames train`, timed, its last lines kept
  local label=$1
  shift
  echo "== $label: bnnames train $*"
  { time timeout 200 python3 -m bnnames train "$DATA" -c "$RUNS/$label.safetensors" "$@" >"$RUNS/$label.out" 2>&1; } 2>&1
  tail -n 3 "$RUNS/$label.out"
}

for part in $PARTS; do
  case $part in
  env)
    {
      nvidia-smi -L
      nproc
      python3 -c "import torch, typer, rich, safetensors; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.version.cuda, 'threads', torch.get_num_threads(), 'typer', typer.__version__)"
      echo "== index_add_ on CUDA, 20 repeats of one sum: distinct results without / with deterministic mode"
      timeout 60 python3 - <<'EOF'
import os
import torch
os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
g = torch.Generator().manual_seed(0)
src, index = torch.randn(96_000, 10, generator=g).cuda(), torch.randint(0, 27, (96_000,), generator=g).cuda()
def distinct():
    return len({torch.zeros(27, 10, device="cuda").index_add_(0, index, src).cpu().numpy().tobytes() for _ in range(20)})
print("atomics:", distinct())
torch.use_deterministic_algorithms(True)
print("deterministic:", distinct())
EOF
    } 2>&1 | tee "$OUT/env.log"
    ;;
  sweep)
    timeout 240 python3 -m benchmarks.devices --data "$DATA" --json "$OUT/devices.json" --budget 0.5 2>&1 | tee "$OUT/sweep.log"
    timeout 60 python3 -m benchmarks.cuda_graph --data "$DATA" 2>&1 | tee -a "$OUT/sweep.log"
    ;;
  table)
    {
      train default-cpu --steps 20000 --device cpu
      train default-auto --steps 20000
      train default-cuda --steps 20000 --device cuda
      train large-cuda --n-hidden 1024 --batch-size 4096 --steps 20000 --device cuda
      train large-auto --n-hidden 1024 --batch-size 4096 --steps 2000
      train large-cpu --n-hidden 1024 --batch-size 4096 --steps 200 --device cpu
      for ckpt in default-cpu large-cuda; do
        for device in cpu cuda; do
          echo "== bnnames eval -c $ckpt --split all --device $device"
          { time timeout 100 python3 -m bnnames eval -c "$RUNS/$ckpt.safetensors" --split all --device $device 2>&1 | tail -n 3; } 2>&1
        done
      done
    } 2>&1 | tee "$OUT/table.log"
    ;;
  suite)
    timeout 240 python3 -m pytest -q -x -p no:cacheprovider 2>&1 | tee "$OUT/suite.log"
    ;;
  *)
    echo "unknown part $part" && exit 2
    ;;
  esac
done
