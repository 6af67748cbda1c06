#!/usr/bin/env bash
# Makes sure what Flora needs on Debian is installed: the .NET 10 SDK (checked, not installed) and
# the Debian packages below. As root it installs missing packages with apt-get; otherwise it names
# them and stops.
set -euo pipefail

packages=(
  libopenblas0-pthread     # OpenBLAS: CPU matrix products
  dataset-fashion-mnist    # Fashion-MNIST IDX files for the pilot study and the loader tests
  diatheke                 # SWORD Bible reader: regenerates the embedded corpus, corpus tests
  sword-text-web           # World English Bible (engWEB2015eb): source of the embedded English corpus
  sword-text-sparv         # Reina-Valera 1909 (spaRV1909eb): the Spanish text
)

if ! command -v dotnet >/dev/null 2>&1; then
  echo "error: the .NET SDK is not installed: install the .NET 10 SDK (https://dot.net) and run this again" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "error: missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
