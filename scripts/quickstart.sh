#!/usr/bin/env bash
# Quick start: English->Romanian on the bundled LibreOffice strings, a small transformer trained
# from scratch with AD-DROP cross-tuning on the CPU, beam search and sacrebleu (addrop-quickstart).
# A few minutes on 2 cores. Usage: scripts/quickstart.sh [WORKDIR] [EPOCHS] [recipe overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${VENV:-.venv}/bin/addrop-quickstart" "$@"
