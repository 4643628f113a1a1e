#!/bin/bash
# Multi-node pretraining under SLURM without a sweep: `sbatch scripts/sbatch_pretrain.sh [k=v ...]`
# from the repository root (after `bash scripts/setup.sh`, or with the project installed into the
# cluster's environment: `PYTHON=python sbatch ...`). One task per GPU; Lightning reads SLURM's
# variables (SLURMEnvironment), so no torchrun is needed here. Edit the #SBATCH lines for your
# cluster; trainer.devices / trainer.num_nodes below follow them.
#
# Before the time limit SLURM sends USR2 to every task (the same signal submitit's sweeps ask
# for); each rank checkpoints at the next step into runs/<name>/hpc_ckpt_<n>.ckpt, rank 0 runs
# `scontrol requeue`, and the requeued job resumes from that checkpoint (experiments/requeue.py).
#
#SBATCH --job-name=wsl-pretrain
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=10
#SBATCH --time=72:00:00
#SBATCH --signal=USR2@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=wsl-pretrain-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"

PYTHON=${PYTHON:-.venv/bin/python}
CONFIG=${CONFIG:-configs/pretrain/paper_rx101_32x8d.yaml}
# the name must not change when the job is requeued: the job id stays the same
NAME=${NAME:-pretrain-${SLURM_JOB_ID}}

srun --kill-on-bad-exit=1 "$PYTHON" -m experiments pretrain "$CONFIG" \
  name="$NAME" \
  trainer.accelerator=gpu trainer.strategy=ddp \
  trainer.devices="${SLURM_NTASKS_PER_NODE}" trainer.num_nodes="${SLURM_JOB_NUM_NODES}" \
  "$@"
