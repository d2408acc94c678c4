#!/usr/bin/env bash
# Installs the Debian packages vlmcurate needs to build, test and run, and
# only those that are missing.  Safe to run repeatedly; needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libarchive-dev        # tar/tar.gz/tar.zst reading and writing
  libturbojpeg0-dev     # JPEG decode/encode (TurboJPEG API)
  libwebp-dev libpng-dev libzstd-dev libcjson-dev
  zlib1g-dev            # deterministic gzip of whole shards
  libsnappy-dev         # snappy pages of parquet URL lists
  libcurl4-openssl-dev  # the urls source downloads (multi interface)
  openssl               # test certificates for the HTTPS download tests
  libexttextcat-dev libexttextcat-data   # language identification
  libicu-dev            # Unicode NFC and case folding for text dedup
  wamerican             # English word list for the common-word filter
  desktop-base gnome-backgrounds  # real pictures for the dedup accuracy test
  python3-pil python3-numpy       # test images (dedup transforms, download tests), reference pHash
  python3 tar gzip zstd # test drivers and independent tar readers
  libtesseract-dev tesseract-ocr-eng     # the ocr stage's Tesseract backend
  libpoppler-glib-dev libcairo2-dev      # the pdf source renders pages
  poppler-utils         # pdftotext: the OCR tests' ground truth
  shared-mime-info libtasn1-doc  # their PDFs (a spec, a manual): real pages for the OCR tests
  slurm-wlm munge       # tests/e2e/test_slurm.py runs a local Slurm (scripts/slurm-local.sh)
  clang libomp-dev      # the clang build (scripts/test.sh) and libFuzzer (scripts/fuzz.sh)
  clang-format          # scripts/lint.sh (ctest lint.sources); the clang package lacks it
)
if [ "${VC_WITH_BENCH:-0}" = 1 ]; then
  # tests/bench/sidebyside.sh: gguf-py (from the llama.cpp tree) needs them.
  PACKAGES+=(python3-numpy python3-sentencepiece)
  # bench_dedup chain: shared/peers/pil_pipeline.py (imagededup's pHash) needs it.
  PACKAGES+=(python3-scipy)
fi
# Tests write parquet files with an independent writer from npm.  A Node.js
# that already brings its own npm (NodeSource's nodejs conflicts with
# Debian's npm package) is used as it is.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi
if [ "${VC_WITH_BROWSER:-1}" = 1 ]; then
  PACKAGES+=(chromium)  # renders the HTML audit report in tests
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
