#!/usr/bin/env bash
# Installs what CKZ needs from Debian 12 packages; does nothing when all are present.
# Idempotent and non-interactive. Needs root (or sudo).
set -euo pipefail

packages=(
  g++ cmake ninja-build ccache pkg-config
  libflatbuffers-dev flatbuffers-compiler libzstd-dev zstd liblzma-dev xz-utils
  libgtest-dev clang-14 libclang-rt-14-dev
  python3-torch python3-numpy libopenblas0-pthread dataset-fashion-mnist
  libtorch-dev
  pybind11-dev python3-pybind11 python3-pytest
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
