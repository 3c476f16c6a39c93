#!/usr/bin/env bash
# Install MASSIF and run the embedded default: Sneaker -> Sandal on the bundled model, then
# serve the page on http://127.0.0.1:8000 (pass --no-serve to only print the analysis).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/massif demo "$@"
