#!/usr/bin/env bash
# Installs everything tinytvm needs on a fresh Debian machine (as root), idempotently:
# the Arm cross compiler, newlib, QEMU (Cortex-M7), and the package in ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
for tool in arm-none-eabi-gcc qemu-system-arm gcc make cmake; do
  command -v "$tool" >/dev/null 2>&1 || need_apt=1
done
[ -d /usr/lib/arm-none-eabi/newlib ] || need_apt=1
if [ "$need_apt" = 1 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    gcc make cmake gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm >/dev/null
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch only serves as the independent reference in the tests (CPU build).
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import tinytvm, tvm, torch" >/dev/null
