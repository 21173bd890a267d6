#!/usr/bin/env bash
# Installs the toolchains that build Python and JavaScript components into
# tests/guests/.tools (not into the system): componentize-py and Spin's Python SDK (whose
# wheel also carries the WIT files the guests are built against) from pip, and
# componentize-js, componentize-qjs and jco from npm. Idempotent: a tool already at its version is kept.
#
# Usage: scripts/guest-tools.sh [python] [js]   (both when none is named)
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="tests/guests/.tools"
COMPONENTIZE_PY=0.25.1
SPIN_SDK_PY=5.0.0
COMPONENTIZE_JS=0.23.0
JCO=1.35.0
COMPONENTIZE_QJS=0.4.5

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(python js)

install_python() {
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq python3-pip
    fi
    local dir="$TOOLS/python" stamp="$TOOLS/python/.installed"
    local versions="componentize-py==$COMPONENTIZE_PY spin-sdk==$SPIN_SDK_PY"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$versions" ]; then
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$dir" $versions
    echo "$versions" > "$stamp"
}

install_js() {
    if ! command -v npm >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq nodejs npm
    fi
    local dir="$TOOLS/js" stamp="$TOOLS/js/.installed"
    local versions="@bytecodealliance/componentize-js@$COMPONENTIZE_JS @bytecodealliance/jco@$JCO componentize-qjs@$COMPONENTIZE_QJS"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$versions" ]; then
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    npm install --silent --no-audit --no-fund --prefix "$dir" $versions
    echo "$versions" > "$stamp"
}

for tool in "${want[@]}"; do
    case "$tool" in
        python) install_python ;;
        js) install_js ;;
        *) echo "unknown tool set: $tool (python or js)" >&2; exit 2 ;;
    esac
done
