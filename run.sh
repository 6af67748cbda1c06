#!/usr/bin/env bash
# The main job: installs what is missing, builds, and trains a small GPT with FLORA (compressed
# momentum, rank 32) on the English corpus embedded in the repository. Extra arguments go to
# 'flora train' (try --quick, --help, or --resume runs/train).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/deps.sh
exec ./flora train "$@"
