#!/usr/bin/env bash
# The standard load run (make load): registrar with the development config
# on a fresh data directory, and the null reference server, each measured
# by registrar-load with server CPU per request and memory. Pass
# BCRYPT=1 to run registrar with bcrypt at cost 4 (the database, not the
# hash, is then the limit of register and login).
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${DUR:-6s}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
export REGISTRAR_DATA_DIRECTORY="$work/data" REGISTRAR_ACCESS_LOG="${ACCESS_LOG:-true}"
if [ -n "${BCRYPT:-}" ]; then
	export REGISTRAR_BCRYPT_ROUNDS=4 REGISTRAR_PASSWORD_CONFIG__ALGORITHM=bcrypt
fi
config=cmd/registrar/dev.yaml
go build -o "$work/registrar" ./cmd/registrar
go build -o "$work/registrar-load" ./cmd/registrar-load
load="$work/registrar-load"

"$work/registrar" -config "$config" -listen 127.0.0.1:18008 2>/dev/null &
server=$!
"$load" -serve-null 127.0.0.1:18090 2>/dev/null &
null=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18008/_matrix/client/versions >/dev/null && break; sleep 0.05; done

for mode in ${MODES:-versions available whoami introspect uia-start rename register login}; do
	for c in ${CONCURRENCY:-8 64}; do
		settle=0s
		case "$mode" in register|login) settle=3s ;; esac
		"$load" -target http://127.0.0.1:18008 -pid "$server" -mode "$mode" -c "$c" -d "$DUR" -settle "$settle" 2>/dev/null | sed 's/^/registrar /'
		case "$mode" in register|login) ;; *)
			"$load" -target http://127.0.0.1:18090 -pid "$null" -mode "$mode" -c "$c" -d "$DUR" 2>/dev/null | sed 's/^/null      /' ;;
		esac
	done
done
kill -INT "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
"$load" -mode start -binary "$work/registrar" -config "$config" -n 20 2>/dev/null
