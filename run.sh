#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the pilot study of the FLORA paper
# (Figure 1) on Fashion-MNIST. Extra arguments go to 'flora pilot' (try --quick or --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/deps.sh
exec ./flora pilot --out runs/pilot "$@"
