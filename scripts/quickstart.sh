#!/usr/bin/env bash
# Quick start: English->Romanian on the bundled LibreOffice strings (data/quickstart, MPL-2.0),
# a small transformer trained from scratch with AD-DROP cross-tuning on the CPU, then beam search
# and sacrebleu. A few minutes on 2 cores. Usage: scripts/quickstart.sh [WORKDIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-runs/quickstart}
epochs=${2:-12}
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p "$work"

# prepare_translation.py writes its --dest whole or not at all, so an existing one is complete:
# a second run reuses it (and its checkpoints: training resumes, or finds itself finished)
if [ ! -d "$work/data" ]; then
  python scripts/prepare_translation.py -s en -t ro --corpus data/quickstart/en-ro \
    --valid-size 300 --test-size 300 --vocab-size 4000 --dest "$work/data"
fi

# odd epochs plain fine-tuning, even epochs AD-DROP (the log's "addrop" column says which)
fairseq-train "$work/data/bin" --user-dir addrop_fairseq --cpu --seed 1 \
  --task addrop_translation --arch addrop_transformer --share-all-embeddings \
  --encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 128 --decoder-embed-dim 128 \
  --encoder-ffn-embed-dim 256 --decoder-ffn-embed-dim 256 \
  --encoder-attention-heads 4 --decoder-attention-heads 4 --dropout 0.1 \
  --criterion addrop_label_smoothed_cross_entropy --label-smoothing 0.1 \
  --addrop-p 0.3 --addrop-q 0.3 --addrop-schedule cross \
  --optimizer adam --adam-betas '(0.9, 0.98)' --lr 2e-3 --lr-scheduler inverse_sqrt \
  --warmup-updates 100 --max-tokens 4000 --max-epoch "$epochs" \
  --save-dir "$work/checkpoints" --no-epoch-checkpoints --log-format simple --log-interval 20 \
  2>&1 | grep -v -e tensorboardX -e "^\s*$" | tee "$work/train.log"

fairseq-generate "$work/data/bin" --user-dir addrop_fairseq --cpu --gen-subset test \
  --path "$work/checkpoints/checkpoint_best.pt" --beam 4 --batch-size 64 --required-batch-size-multiple 1 \
  --post-process sentencepiece --scoring sacrebleu 2>/dev/null > "$work/generate.test.txt"
tail -n 1 "$work/generate.test.txt"
python scripts/score_bleu.py --generate-output "$work/generate.test.txt"
