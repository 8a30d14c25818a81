# Sourced by the screenshot scripts: a fresh QGIS profile with the plugin, and QGIS under Xvfb.
#
#   shot_profile WORK [EXTRA_INI_LINES]   the profile in WORK/profiles (the plugin installed and enabled,
#                                         tips off, [rsgeo] python/backend set, then EXTRA_INI_LINES)
#   shot_run WORK STARTUP.py OUT.png      QGIS on a 1600x1000 virtual screen running STARTUP.py; fails
#                                         with the end of QGIS's log when no picture was written
# Needs ROOT and RSGEO_PYTHON set by the caller.

shot_profile() {
    local work="$1" extra="${2:-}"
    local profile="$work/profiles/profiles/default"
    mkdir -p "$profile/python/plugins" "$profile/QGIS"
    cp -r "$ROOT/qgis_plugin/rsgeo_qgis" "$profile/python/plugins/"
    rm -f "$profile/python/plugins/rsgeo_qgis/definitions"  # a link in the checkout: copy what it points to
    cp -r "$ROOT/rsgeo/definitions" "$profile/python/plugins/rsgeo_qgis/definitions"
    cat > "$profile/QGIS/QGIS3.ini" <<INI
[PythonPlugins]
rsgeo_qgis=true

[qgis]
checkVersion=false
showTips322=false
showTips=false
newProjectDefault=false

[rsgeo]
python=$RSGEO_PYTHON
backend=external
$extra
INI
}

shot_run() {
    local work="$1" startup="$2" out="$3"
    export RSGEO_SHOT_OUT="$out" RSGEO_SHOT_TOOLS="$(cd "$(dirname "$startup")" && pwd)"
    export XDG_RUNTIME_DIR="$work/runtime"
    mkdir -p -m 700 "$XDG_RUNTIME_DIR"
    unset QT_QPA_PLATFORM PYTHONPATH
    xvfb-run -a -s "-screen 0 1600x1000x24" \
        qgis --nologo --noversioncheck --profiles-path "$work/profiles" --code "$startup" >"$work/qgis.log" 2>&1 || true
    if [ -n "${RSGEO_SHOT_LOG:-}" ]; then cat "$RSGEO_SHOT_LOG" 2>/dev/null || true; fi
    if [ ! -s "$out" ]; then
        echo "screenshot: no image written; QGIS log:" >&2
        tail -40 "$work/qgis.log" >&2
        return 1
    fi
    echo "$out"
}
