#!/usr/bin/env bash
# Builds the polyglot app's Python (transform) or JavaScript (render) component with the
# toolchains scripts/guest-tools.sh installs into tests/guests/.tools: componentize-py and
# componentize-js, against the WASI 0.2 WIT files that Spin's Python SDK ships.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../..
tools=$root/tests/guests/.tools
world=wasi:http/proxy@0.2.6
case "${1:-}" in
    transform)
        "$root/scripts/guest-tools.sh" python
        cd "$here/transform"
        PYTHONPATH=$tools/python "$tools/python/bin/componentize-py" \
            -d "$tools/python/spin_sdk/wit" -w "$world" componentize app -o app.wasm
        ;;
    render)
        "$root/scripts/guest-tools.sh" python js
        cd "$here/render"
        # componentize-js reads WIT only below its working directory.
        rm -rf wit && cp -r "$tools/python/spin_sdk/wit" wit
        "$tools/js/node_modules/.bin/componentize-js" app.js --wit wit -n "$world" -o app.wasm
        rm -rf wit
        ;;
    *)
        echo "usage: $0 transform|render" >&2
        exit 2
        ;;
esac
