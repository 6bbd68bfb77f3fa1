# Sourced by scripts/test.sh and scripts/with-moto.sh: installs moto (the AWS emulator the AWS
# tests and benchmarks talk to) into .venv and starts it on a free loopback port, exporting
# MOTO_ENDPOINT; the server stops when the sourcing shell exits. The same .venv holds the
# readers the `files` round-trip tests read dotenv and properties files back with
# (tests/peers/readers.py).
MOTO_VERSION="5.1.22"
DOTENV_VERSION="1.2.4"
JPROPERTIES_VERSION="2.1.2"

start_moto() {
  if ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
    || ! .venv/bin/python -c "import dotenv, jproperties" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
      "python-dotenv==$DOTENV_VERSION" "jproperties==$JPROPERTIES_VERSION"
  fi
  mkdir -p target
  local port
  port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
  MOTO_PID=$!
  trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
  export MOTO_ENDPOINT="http://127.0.0.1:$port"
  .venv/bin/python - "$MOTO_ENDPOINT" <<'PY'
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("moto did not start; see target/moto.log")
PY
  echo "moto $MOTO_VERSION listening at $MOTO_ENDPOINT"
}
