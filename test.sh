#!/usr/bin/env bash
# The test suite: installs what is missing, builds and runs every test (xunit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/deps.sh
exec dotnet test Flora.sln -c Release --nologo "$@"
