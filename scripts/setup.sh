#!/usr/bin/env bash
# Install what MASSIF needs into .venv (and Debian packages when apt is there).
#   scripts/setup.sh          the tool: PyTorch, the massif command, Debian's Fashion-MNIST
#   scripts/setup.sh --test   also the test tools: pytest, torchattacks, Playwright + chromium
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=0
[ "${1:-}" = "--test" ] && TEST=1

say() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
apt_pkgs=(dataset-fashion-mnist)
[ "$TEST" = 1 ] && apt_pkgs+=(chromium)
PY=$(command -v python3.11 || command -v python3 || true)
[ -n "$PY" ] || { say "Python 3 not found; install python3 (3.10 or newer)"; exit 1; }
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then apt_pkgs+=(python3-venv); fi
missing=()
if command -v dpkg >/dev/null && command -v apt-get >/dev/null; then
  for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  say "installing Debian packages: ${missing[*]}"
  if $SUDO true 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "cannot run apt-get as root; install these yourself: ${missing[*]}"
    say "(without dataset-fashion-mnist, run: .venv/bin/massif download-data)"
  fi
elif ! command -v apt-get >/dev/null; then
  say "not a Debian system: Fashion-MNIST comes from \`massif download-data\`"
fi

# --- Python packages -------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
extra=""
[ "$TEST" = 1 ] && extra="[test]"
say "installing massif$extra and PyTorch into .venv (the first time takes a few minutes)"
.venv/bin/python -m pip install -q -e ".$extra" 2>&1 | grep -v "^WARNING: Location" >&2 || true
.venv/bin/python -c 'import massif, torch' || { say "installation failed"; exit 1; }
if [ "$TEST" = 1 ]; then
  # torchattacks (the reference attacks in tests) pins an old requests; it needs only scipy.
  .venv/bin/python -m pip install -q --no-deps "torchattacks==3.5.1" 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
  .venv/bin/python -c 'import torchattacks' || { say "torchattacks failed to install"; exit 1; }
fi
say "ready: .venv/bin/massif"
