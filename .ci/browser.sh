#!/usr/bin/env bash
# Real-browser test of the review page (tests/test_review_browser.py): Debian's chromium and
# chromium-driver driven by selenium (no browser download). Installs them with apt-get when
# missing; ACTIVEPAM_REQUIRE_BROWSER=1 turns the test's "no browser" skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg PYTHONUNBUFFERED=1

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "== installing chromium + chromium-driver (apt-get)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver
fi
/usr/bin/chromium --version
/usr/bin/chromedriver --version

echo "== review page in a real browser (screenshots: results/review_screenshots/)"
ACTIVEPAM_REQUIRE_BROWSER=1 .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_review_browser.py
ls results/review_screenshots/*.png
