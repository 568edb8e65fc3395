#!/usr/bin/env bash
# Quick start: English->Romanian on the bundled LibreOffice strings, a small transformer trained
# from scratch with AD-DROP cross-tuning on the CPU, beam search and sacrebleu (scripts/quickstart.py).
# A few minutes on 2 cores. Usage: scripts/quickstart.sh [WORKDIR] [EPOCHS] [recipe overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
exec python scripts/quickstart.py "$@"
