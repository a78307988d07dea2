#!/usr/bin/env bash
# One command per job from a fresh clone: `scripts/dev.sh run` installs and runs the quick benchmark,
# `scripts/dev.sh test` installs and runs what CI runs (lint, format check, the whole test suite).
#   scripts/dev.sh install     a virtual environment in $VENV (default .venv) with the project, its test tools and
#                              MedMNIST-C (the robustness extra; ImageMagick where apt-get may install it); torch from $TORCH_INDEX when set (CPU-only wheels:
#                              TORCH_INDEX=https://download.pytorch.org/whl/cpu), else PyPI (which pulls CUDA on Linux)
#   scripts/dev.sh test        install (and both example plugins), then ruff check, ruff format --check and pytest -n auto (the full suite, as CI)
#   scripts/dev.sh test-fast   install, then pytest -m "not slow" -n auto (the inner loop, one process per core)
#   scripts/dev.sh run [ARGS]  install, then `medaugbench run ARGS` (default: the quick preset); missing official
#                              MedMNIST files are downloaded, with progress, into ~/.cache/medaugbench/medmnist
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH="${TORCH:-torch==2.14.1 torchvision==0.29.1}"
TORCH_INDEX="${TORCH_INDEX:-}"

install() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  if [ -n "$TORCH_INDEX" ]; then
    # shellcheck disable=SC2086
    pip install -q $TORCH --index-url "$TORCH_INDEX"
  else
    # shellcheck disable=SC2086
    pip install -q $TORCH
  fi
  pip install -q -e ".[dev,robustness]"
  robustness
}

examples() {
  # The two example third-party plugins, installed as their READMEs say, so the tests exercise a real install. Only the
  # test jobs install them: both import torch when plugins load, which would add its import time to every command.
  pip install -q --no-deps -e examples/medaugbench-example-plugin -e examples/medaugbench-example-generator
}

robustness() {
  # MedMNIST-C (robustness scoring, the medmnistc strategy): the package without its outdated pins (its real needs
  # come with the `robustness` extra above), and ImageMagick's MagickWand where we may install it. Never fails the
  # install: without MagickWand those features say what to install and their tests skip.
  pip install -q --no-deps "medmnistc==0.1.0" || echo "medmnistc could not be installed; robustness features are off"
  if ! python -c "import wand.image" >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q --no-install-recommends libmagickwand-dev >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends libmagickwand-dev >/dev/null 2>&1; } \
      || true
  fi
  python -c "import wand.image" >/dev/null 2>&1 \
    || echo "ImageMagick's MagickWand is missing (apt-get install libmagickwand-dev; brew install imagemagick): robustness features are off"
}

browser() {
  # The HTML report test drives Debian's chromium headless; install it where we may (it skips, saying why, otherwise).
  if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } \
      || echo "chromium could not be installed; the browser test will skip"
  fi
}

case "${1:-}" in
  install) install ;;
  test)
    install
    examples
    browser
    ruff check .
    ruff format --check .
    pytest -n auto
    ;;
  test-fast)
    install
    examples
    pytest -m "not slow" -n auto
    ;;
  run)
    install
    shift
    medaugbench run "$@"
    ;;
  *)
    echo "usage: scripts/dev.sh install|test|test-fast|run [medaugbench run arguments]" >&2
    exit 2
    ;;
esac
