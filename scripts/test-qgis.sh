#!/usr/bin/env bash
# Run the QGIS plugin tests (tests/qgis) in a real, headless QGIS.
#
#   scripts/test-qgis.sh [pytest args...]
#
# Installs Debian's QGIS if missing (apt), makes .venv-qgis on QGIS's Python
# (/usr/bin/python3) with pytest and pytest-qgis -- without torch and without
# rsgeo -- and runs tests/qgis with RSGEO_PYTHON (a Python that has rsgeo;
# default: the project's .venv) as the plugin's external environment.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
t0=$(date +%s)
say() { printf 'test-qgis: %s (%ss)\n' "$*" "$(( $(date +%s) - t0 ))" >&2; }

# 1. QGIS itself.
if ! /usr/bin/python3 -c "import qgis.core" 2>/dev/null; then
    say "installing Debian's QGIS"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends qgis python3-qgis >/dev/null
fi
say "QGIS $(/usr/bin/python3 -c 'from qgis.core import Qgis; print(Qgis.QGIS_VERSION)' 2>/dev/null)"

# 2. A venv on QGIS's Python that sees the qgis bindings.
VENV="${RSGEO_QGIS_VENV:-$ROOT/.venv-qgis}"
if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/qgis/requirements.txt 2>&1 \
    | grep -v -e "^WARNING: Location" -e "dependency conflicts" -e "^scipy .* requires numpy" >&2 || true
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "test-qgis: torch is importable in $VENV; these tests need QGIS's Python without it" >&2
    exit 2
fi
say "venv ready: $VENV"

# 3. The external environment the plugin drives.
export RSGEO_PYTHON="${RSGEO_PYTHON:-$ROOT/.venv/bin/python}"
if ! env -u PYTHONPATH "$RSGEO_PYTHON" -c "import rsgeo" 2>/dev/null; then
    echo "test-qgis: RSGEO_PYTHON=$RSGEO_PYTHON cannot import rsgeo; install it there (pip install -e .)" >&2
    exit 2
fi

# 4. Headless Qt, a private runtime dir, and QGIS settings outside the checkout.
export QT_QPA_PLATFORM=offscreen
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rsgeo-qgis-tests.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export XDG_RUNTIME_DIR="$WORK/runtime"
mkdir -m 700 "$XDG_RUNTIME_DIR"
unset PYTHONPATH

# -P: the checkout is not put on sys.path, so QGIS's Python really cannot import rsgeo.
# pytest-qgis keeps a QGIS profile in tests/qgis/.qgis-settings (git-ignored there).
rm -rf tests/qgis/.qgis-settings
set +e
"$VENV/bin/python" -P -m pytest -c tests/qgis/pytest.ini tests/qgis "$@"
rc=$?
set -e
say "done (exit $rc)"
exit $rc
