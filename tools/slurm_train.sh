#!/usr/bin/env bash
# Training on a Slurm cluster with srun (one task per GPU; nodes = ceil(GPUS / GPUS_PER_NODE)).
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args...]
# Environment: GPUS (default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5), SRUN_ARGS (extra srun flags),
# NO_GRES=1 (no --gres=gpu:N: CPU clusters; GPUS and GPUS_PER_NODE then count tasks, which train on CPU over gloo),
# MASTER_PORT (rendezvous port on the first node, default 29500), PYTHON (interpreter, default python).
# Pre-emption / requeue: run it from an sbatch script with `#SBATCH --requeue` and pass --resume, which continues
# from the newest checkpoint of WORK_DIR (or starts afresh when there is none); see docs/resume.md.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG [WORK_DIR] [tools/train.py arguments...]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
WORK_DIR_ARGS=()
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
  WORK_DIR_ARGS=(--work-dir "$1")
  shift
fi
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON=${PYTHON:-python}
GRES_ARGS=()
if [ "${NO_GRES:-0}" != "1" ]; then
  GRES_ARGS=(--gres="gpu:${GPUS_PER_NODE}")
fi

# shellcheck disable=SC2086
PYTHONPATH="$HERE/..:${PYTHONPATH:-}" \
srun -p "$PARTITION" --job-name="$JOB_NAME" "${GRES_ARGS[@]}" \
  --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" \
  --kill-on-bad-exit=1 $SRUN_ARGS \
  "$PYTHON" -u "$HERE/train.py" "$CONFIG" "${WORK_DIR_ARGS[@]}" --launcher slurm "$@"
