#!/usr/bin/env bash
# A single-machine dask cluster for geosr: a scheduler, one GPU worker per visible GPU
# (resources GPU=1) and CPU workers. Stop it with Ctrl-C.
#   ./run-cluster.sh            # then: geosr batch m.csv --scale 4 --scheduler tcp://127.0.0.1:8786
set -euo pipefail
PORT=${PORT:-8786}
CPU_WORKERS=${CPU_WORKERS:-2}
trap 'kill 0' EXIT INT TERM
dask scheduler --port "$PORT" --dashboard-address :0 &
sleep 3
GPUS=$(nvidia-smi -L 2>/dev/null | wc -l || true)
for ((i = 0; i < GPUS; i++)); do
  CUDA_VISIBLE_DEVICES=$i dask worker "tcp://127.0.0.1:$PORT" --nworkers 1 --nthreads 1 \
    --resources GPU=1 --name "gpu-$i" &
done
if ((CPU_WORKERS > 0)); then
  OMP_NUM_THREADS=1 dask worker "tcp://127.0.0.1:$PORT" --nworkers "$CPU_WORKERS" --nthreads 1 &
fi
wait
