#!/usr/bin/env bash
# One exploring run of the bsds500-edges recipe: train on BSDS500 train (200 images), score val (100),
# single scale, NMS + thinning, 99 thresholds. The test split is never read.
#
#   bash recipes/bsds500-edges/explore.sh NAME [dotted.key=value ...]
#
# The run's params are recipes/bsds500-edges/params.yaml with the exploring settings below, then the
# run's own overrides (values are YAML: train.lr_steps=[750], model.hidden=[512,512]). It writes
# reports/bsds500/explore20/NAME/ (params.yaml, metrics.json, train_loss.csv, summary.json, PR curve,
# predictions) and keeps data in $EXPLORE_DATA (default data/explore: shards built once, a plan and a
# model per run). Run from the repository root, with ../shared beside it (BSDS500 from
# ../shared/datasets/BSR). Named NAME@OTHER (or with REUSE=OTHER) it trains nothing and scores run OTHER's model with this
# run's params (test-time settings: evaluate.flip=true, evaluate.scales=[...]); its training files
# are OTHER's, copied.
set -euo pipefail
name=${1:?usage: explore.sh NAME[@OTHER] [dotted.key=value ...]}
shift
if [[ $name == *@* ]]; then REUSE=${name#*@}; name=${name%@*}; fi  # NAME@OTHER: score OTHER's model
out=${EXPLORE_OUT:-reports/bsds500/explore20}/$name
work=${EXPLORE_DATA:-data/explore}
mkdir -p "$out" "$work"
uv run python - "$out/params.yaml" "$@" <<'PY'
import sys
import yaml

base = yaml.safe_load(open("recipes/bsds500-edges/params.yaml"))
exploring = ["data.bsds500.source=../shared/datasets/BSR", "data.bsds500.train_splits=[train]",
             "data.bsds500.eval_split=val", "train.iterations=1000", "train.lr_steps=[750]",
             "train.checkpoint_every=250", "train.device=cpu"]
for item in exploring + sys.argv[2:]:
    key, _, value = item.partition("=")
    node, *path = base, *key.split(".")
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = yaml.safe_load(value)
with open(sys.argv[1], "w") as f:
    f.write(f"# exploring run {sys.argv[1].split('/')[-2]}: recipes/bsds500-edges/explore.sh overrides: "
            f"{' '.join(sys.argv[2:]) or '(none)'}\n")
    yaml.safe_dump(base, f, sort_keys=False)
PY
P=$out/params.yaml
if [ ! -f "$work/shards/manifest.json" ]; then
    uv run pixelnet download bsds500 --out "$work/raw" --params "$P"
    uv run pixelnet shard bsds500 --raw "$work/raw" --out "$work/shards" --params "$P"
fi
start=$(date +%s)
model=${REUSE:-$name}
if [ -n "${REUSE:-}" ]; then
    src=$(dirname "$out")/$REUSE
    cp "$src/sampling.json" "$src/train_loss.csv" "$src/train_summary.json" "$out/"
else
    uv run pixelnet sample edges --shards "$work/shards" --out "$work/samples-$name" --report "$out/sampling.json" \
        --params "$P" --quiet > /dev/null
    uv run pixelnet train edges --shards "$work/shards" --samples "$work/samples-$name" --out "$work/model-$name" \
        --log "$out/train_loss.csv" --params "$P" --quiet > "$out/train_summary.json"
fi
trained=$(date +%s)
uv run pixelnet evaluate edges --shards "$work/shards" --model "$work/model-$model/model.pt" --out "$out" \
    --params "$P" --quiet > /dev/null
echo "{\"name\": \"$name\", \"model_of\": \"$model\", \"cpu\": \"$(lscpu | sed -n 's/^Model name: *//p')\", \"sample_and_train_s\": $((trained - start)), \"evaluate_s\": $(($(date +%s) - trained))}" > "$out/wall.json"
echo "$name: $(cat "$out/metrics.json" | tr -d '\n' | cut -c1-200)"
