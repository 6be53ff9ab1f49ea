#!/usr/bin/env bash
# Mouth-to-ear latency of the headless path: two engines in one process, 10 sessions × 25
# clicks (250 events), direct, or with --relay through a coturn on free loopback ports
# (relay candidates only), reached over UDP, or with `--relay-over tcp|tls` over TCP or TLS
# (for TLS a certificate for 127.0.0.1 is made here and trusted through SSL_CERT_FILE).
# Prints p50/p95 and the breakdown.
# Usage: bench/mouth-to-ear.sh [--relay] [--relay-over udp|tcp|tls] [latency-probe options]
source "$(dirname "$0")/common.sh"
machine
args=("$@")
if [[ " $* " == *" --relay-over tls "* ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
  export SSL_CERT_FILE=$tmp/cert.pem
  args+=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem")
fi
"$bin/latency-probe" "${args[@]}"
