#!/usr/bin/env bash
# Put Fashion-MNIST where `data=fashion_mnist` reads it: <data root>/FashionMNIST/raw/, the four idx
# files decompressed, as torchvision.datasets.FashionMNIST expects them. For machines that cannot
# download (torchvision's URLs): the files come from a local folder, by default the one Debian's
# package ships (sudo apt-get install dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist/).
#
# Each file is checked against the MD5 of the official decompressed file before it is installed
# (Debian recompressed the .gz files, so their own MD5s differ from torchvision's list; the content
# is the same). Idempotent: files already in place with the right MD5 are left alone; a wrong or
# partial file there is replaced; nothing is written on a mismatch.
#
# Usage:  scripts/fetch_fashion_mnist.sh [DATA_ROOT]
#   DATA_ROOT            default: $VAELAB_DATA_ROOT, else <repo>/data
# Environment:
#   FASHION_MNIST_SRC    folder with the four files, .gz or decompressed (default /usr/share/datasets/fashion-mnist)
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n 2,16p "$0"; exit 0 ;;
esac
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${1:-${VAELAB_DATA_ROOT:-$REPO/data}}
SRC=${FASHION_MNIST_SRC:-/usr/share/datasets/fashion-mnist}
RAW="$ROOT/FashionMNIST/raw"

# name and MD5 of the official decompressed file (also in src/vaelab/data/idx_files.py)
FILES=(
  "train-images-idx3-ubyte f4a8712d7a061bf5bd6d2ca38dc4d50a"
  "train-labels-idx1-ubyte 9018921c3c673c538a1fc5bad174d6f9"
  "t10k-images-idx3-ubyte 8181f5470baa50b63fa0f6fddb340f0a"
  "t10k-labels-idx1-ubyte 15d484375f8d13e6eb1aabb0c3f46965"
)

md5_of() { md5sum "$1" | cut -d' ' -f1; }

mkdir -p "$RAW"
for entry in "${FILES[@]}"; do
  read -r name md5 <<< "$entry"
  dest="$RAW/$name"
  if [[ -f "$dest" && "$(md5_of "$dest")" == "$md5" ]]; then
    echo "ok       $dest (already in place)"
    continue
  fi
  if [[ -f "$SRC/$name.gz" ]]; then
    src="$SRC/$name.gz"
  elif [[ -f "$SRC/$name" ]]; then
    src="$SRC/$name"
  else
    echo "error: $SRC has neither $name.gz nor $name: install Debian's dataset-fashion-mnist" \
      "(sudo apt-get install dataset-fashion-mnist) or set FASHION_MNIST_SRC to a folder with the four files" >&2
    exit 1
  fi
  tmp=$(mktemp "$RAW/.$name.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  if [[ "$src" == *.gz ]]; then gzip -dc "$src" > "$tmp"; else cp "$src" "$tmp"; fi
  got=$(md5_of "$tmp")
  if [[ "$got" != "$md5" ]]; then
    rm -f "$tmp"
    echo "error: $src decompresses to MD5 $got, not the official $md5: it is not the official $name; nothing written" >&2
    exit 1
  fi
  chmod 644 "$tmp"
  mv -f "$tmp" "$dest"
  trap - EXIT
  echo "written  $dest (from $src, MD5 $md5)"
done
echo "Fashion-MNIST is in $RAW: train with data=fashion_mnist data.root=$ROOT (or VAELAB_DATA_ROOT=$ROOT)"
