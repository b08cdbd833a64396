#!/usr/bin/env bash
# The GPU-scale figures in one go, within 8 minutes on one GPU: the scale table at every shape and precision, then
# a short In-Car learning run at --scale gpu (SFT and one RL seed with Rtod on 100 test dialogues).
#
#     bash scripts/gpu_check.sh [OUTPUT_DIR]       # default runs/gpu_check; prints both tables, keeps their JSON
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu_check}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
timeout 300 python scripts/bench_scale.py --shapes tiny t5-small flan-t5-base flan-t5-large llama-1.1b | tee "$out/scale.md"
cp runs/bench_scale.json "$out/scale.json"
python - "$out/incar_short.yaml" <<'YAML'
import sys, yaml
pipeline = yaml.safe_load(open("configs/bench_incar_gpu.yaml"))
pipeline.update(rewards=["tod"], test_dialogues=100)  # SFT and one Rtod run, scored on 100 test dialogues
yaml.safe_dump(pipeline, open(sys.argv[1], "w"), sort_keys=False)
YAML
timeout 170 python scripts/bench_learning.py --scale gpu --corpora incar --seeds 1 --incar "$out/incar_short.yaml" \
    --output-dir "$out/learning" || echo "learning run stopped at its time limit; finished stages are in $out/learning"
[ -f "$out/learning/results.md" ] && cat "$out/learning/results.md"
