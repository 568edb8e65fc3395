#!/usr/bin/env bash
# Installs addrop-fairseq and its test tools into ./.venv (or $VENV). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
python=${PYTHON:-python3}
[[ -x $venv/bin/python ]] || "$python" -m venv "$venv"
# constraints through the environment: "-c" would not reach fairseq-fixed's build environment
PIP_CONSTRAINT="$PWD/constraints.txt" "$venv/bin/python" -m pip install --quiet \
  --disable-pip-version-check -e ".[test,tensorboard]"
# fairseq pulls a CUDA torchaudio that cannot load next to the CPU torch (and transformers
# imports it when present); nothing here needs it.
"$venv/bin/python" -m pip uninstall --quiet -y torchaudio 2>/dev/null || true
"$venv/bin/python" -c "import addrop_fairseq, fairseq, torch; print('addrop-fairseq ready: fairseq', fairseq.__version__, 'torch', torch.__version__)"
