#!/usr/bin/env bash
# Installs (npm ci, pinned by package-lock.json) and starts the fauxqs SQS
# emulator used by the adapters/sqs tests, bound to 127.0.0.1 only.
# Idempotent: does nothing when something already answers on the port.
# The tests do the same themselves when nothing answers
# (internal/testenv.SQSURL); this script is for running the emulator by hand.
#
#   HEXERACT_SQS_PORT  port (default 4566; the tests' default URL is
#                      sqs://test:test@us-east-1/?endpoint=http://127.0.0.1:4566,
#                      override it with HEXERACT_TEST_SQS)
#   HEXERACT_SQS_LOG   log file (default /tmp/hexeract-fauxqs.log)
#
# Stop it with: kill "$(cat /tmp/hexeract-fauxqs.pid)"
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
port=${HEXERACT_SQS_PORT:-4566}
log=${HEXERACT_SQS_LOG:-/tmp/hexeract-fauxqs.log}
pidfile=/tmp/hexeract-fauxqs.pid

answering() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if answering; then
	echo "sqs test server: already listening on 127.0.0.1:$port"
	exit 0
fi

cd "$dir"
if [ ! -f node_modules/fauxqs/package.json ]; then
	npm ci --no-audit --no-fund --loglevel=error
fi

HEXERACT_SQS_PORT=$port setsid nohup node server.mjs >>"$log" 2>&1 </dev/null &
echo $! >"$pidfile"

for _ in $(seq 1 100); do
	if answering; then
		echo "sqs test server: fauxqs listening on 127.0.0.1:$port (pid $(cat "$pidfile"), log $log)"
		exit 0
	fi
	sleep 0.2
done
echo "sqs test server: fauxqs did not start on 127.0.0.1:$port; see $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
