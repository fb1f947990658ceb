#!/usr/bin/env bash
# The paper's claim at small scale (docs/experiments.md): FCMAE pretraining then fine-tuning vs fine-tuning
# from scratch for the same total number of steps, ConvNeXt V1 and V2 atto at 64 px on a Fashion-MNIST slice,
# on the PyTorch engine (one thread: the faster engine on a shared CPU). Prints one JSON line per run and
# a summary last.
# usage: test/bench/fcmae-vs-scratch.sh OUT_DIR [PRETRAIN_STEPS] [FINETUNE_STEPS] [SEEDS] [ARCHS]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(realpath -m "$1"); pre=${2:-150}; ft=${3:-150}; seeds=${4:-"0 1"}; archs=${5:-"convnext_atto convnextv2_atto"}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
[ -z "${CNX_PYTHON:-}" ] && [ -x /usr/bin/python3 ] && export CNX_PYTHON=/usr/bin/python3  # Debian's, with torch
mkdir -p "$out"
manifest=$(node --import tsx test/bench/fashion-slice.ts "$out/data" 200 50)
common=(--manifest "$manifest" --size 64 --batch 16 --engine torch --device cpu --workers 0 --json)
finetune=(--lr 2e-3 --layer-decay 1 --label-smoothing 0.1 --drop-path 0.1 --head-init-scale 1 --split test)
top1() { node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse).filter(e=>e.type==="eval");console.log(l.at(-1).top1)' "$1"; }
results=()
for arch in $archs; do
  for seed in $seeds; do
    run=$out/$arch-s$seed
    t0=$SECONDS
    node bin/cnx.mjs pretrain "${common[@]}" --arch "$arch" --seed "$seed" --steps "$pre" --lr 1.5e-3 --warmup-steps $((pre / 10)) \
      --run-dir "$run-fcmae" > "$run-fcmae.jsonl"
    node bin/cnx.mjs finetune "${common[@]}" "${finetune[@]}" --arch "$arch" --seed "$seed" --steps "$ft" --warmup-steps $((ft / 10)) \
      --eval-every "$ft" --init "$run-fcmae/checkpoints/step-$pre.safetensors" --run-dir "$run-ft" > "$run-ft.jsonl"
    t1=$SECONDS
    node bin/cnx.mjs finetune "${common[@]}" "${finetune[@]}" --arch "$arch" --seed "$seed" --steps $((pre + ft)) \
      --warmup-steps $(((pre + ft) / 10)) --eval-every $((pre + ft)) --run-dir "$run-scratch" > "$run-scratch.jsonl"
    t2=$SECONDS
    line="{\"arch\":\"$arch\",\"seed\":$seed,\"fcmaeThenFinetuneTop1\":$(top1 "$run-ft.jsonl"),\"fcmaeThenFinetuneSec\":$((t1 - t0)),\"scratchTop1\":$(top1 "$run-scratch.jsonl"),\"scratchSec\":$((t2 - t1))}"
    echo "$line"
    results+=("$line")
  done
done
node -e 'const r=process.argv.slice(1).map(JSON.parse);const m=(a,k)=>r.filter(x=>x.arch===a).reduce((s,x)=>s+x[k],0)/r.filter(x=>x.arch===a).length;console.log(JSON.stringify(Object.fromEntries([...new Set(r.map(x=>x.arch))].map(a=>[a,{fcmaeThenFinetune:m(a,"fcmaeThenFinetuneTop1"),scratch:m(a,"scratchTop1")}]))))' "${results[@]}"
