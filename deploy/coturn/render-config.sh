#!/bin/sh
# Render coturn's config for Cromulent Voice from the environment:
#   render-config.sh TEMPLATE OUTPUT
# writes TEMPLATE (deploy/coturn/turnserver.conf) followed by the deployment's settings to
# OUTPUT, readable by its owner only (it holds the secret). coturn does not expand ${VAR} in
# its config file, hence this step. Every value is checked, so a typo fails here with a clear
# message instead of turning into a coturn that refuses every client.
#
# Environment (see the template's header and docs/DEPLOY.md):
#   TURN_SECRET (required)  TURN_REALM (required)
#   TURN_LISTENING_PORT=3478  TURN_MIN_PORT=49152  TURN_MAX_PORT=50151
#   TURN_USER_QUOTA=16  TURN_TOTAL_QUOTA=1000  TURN_MAX_BPS=64000
#   TURN_EXTERNAL_IP  (optional: PUBLIC or PUBLIC/PRIVATE, comma-separated for several)
#   TURN_TLS_CERT, TURN_TLS_KEY (optional, together)  TURN_TLS_PORT=5349
set -eu

fail() {
    echo "render-config: $*" >&2
    exit 1
}

[ $# -eq 2 ] || fail "usage: render-config.sh TEMPLATE OUTPUT"
template=$1
output=$2
[ -r "$template" ] || fail "cannot read the template $template"

# $1 is a whole number in [$2, $3]; $4 names it.
check_number() {
    case $1 in
        '' | *[!0-9]*) fail "$4 must be a number, not '$1'" ;;
    esac
    [ "${#1}" -le 6 ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ] ||
        fail "$4 must be between $2 and $3, not $1"
}

secret=${TURN_SECRET:-}
[ -n "$secret" ] || fail "TURN_SECRET is not set (the signaling server's TURN_SECRET, same value)"
case $secret in
    *[!A-Za-z0-9+/=._~-]*) fail "TURN_SECRET may only hold A-Z a-z 0-9 + / = . _ ~ - (e.g. openssl rand -hex 32)" ;;
esac
[ "${#secret}" -ge 16 ] || fail "TURN_SECRET is too short: use at least 16 characters (openssl rand -hex 32)"

realm=${TURN_REALM:-}
[ -n "$realm" ] || fail "TURN_REALM is not set (e.g. turn.example.org)"
case $realm in
    *[!A-Za-z0-9.-]*) fail "TURN_REALM must be a domain name, not '$realm'" ;;
esac

port=${TURN_LISTENING_PORT:-3478}
min_port=${TURN_MIN_PORT:-49152}
max_port=${TURN_MAX_PORT:-50151}
user_quota=${TURN_USER_QUOTA:-16}
total_quota=${TURN_TOTAL_QUOTA:-1000}
max_bps=${TURN_MAX_BPS:-64000}
tls_port=${TURN_TLS_PORT:-5349}
check_number "$port" 1 65535 TURN_LISTENING_PORT
check_number "$min_port" 1024 65535 TURN_MIN_PORT
check_number "$max_port" 1024 65535 TURN_MAX_PORT
[ "$min_port" -le "$max_port" ] || fail "TURN_MIN_PORT ($min_port) is above TURN_MAX_PORT ($max_port)"
if [ "$port" -ge "$min_port" ] && [ "$port" -le "$max_port" ]; then
    fail "TURN_LISTENING_PORT ($port) lies inside the relay range $min_port-$max_port"
fi
check_number "$user_quota" 1 1000000 TURN_USER_QUOTA
check_number "$total_quota" 1 1000000 TURN_TOTAL_QUOTA
check_number "$max_bps" 0 1000000000 TURN_MAX_BPS
check_number "$tls_port" 1 65535 TURN_TLS_PORT

external=${TURN_EXTERNAL_IP:-}
case $external in
    *[!0-9A-Fa-f.:/,]*) fail "TURN_EXTERNAL_IP must be IP addresses (PUBLIC or PUBLIC/PRIVATE), not '$external'" ;;
esac

cert=${TURN_TLS_CERT:-}
key=${TURN_TLS_KEY:-}
if [ -n "$cert" ] || [ -n "$key" ]; then
    [ -n "$cert" ] && [ -n "$key" ] || fail "set both TURN_TLS_CERT and TURN_TLS_KEY, or neither"
    [ -r "$cert" ] || fail "cannot read TURN_TLS_CERT $cert"
    [ -r "$key" ] || fail "cannot read TURN_TLS_KEY $key"
fi

umask 077
tmp="$output.tmp.$$"
trap 'rm -f "$tmp"' EXIT
{
    cat "$template"
    echo
    echo "# --- Rendered from the environment by render-config.sh ---------------------------------------"
    echo "static-auth-secret=$secret"
    echo "realm=$realm"
    echo "listening-port=$port"
    echo "min-port=$min_port"
    echo "max-port=$max_port"
    echo "user-quota=$user_quota"
    echo "total-quota=$total_quota"
    if [ "$max_bps" -gt 0 ]; then
        echo "max-bps=$max_bps"
    fi
    # Several mappings are comma-separated in the variable; coturn wants one line each.
    old_ifs=$IFS
    IFS=,
    for mapping in $external; do
        [ -n "$mapping" ] && echo "external-ip=$mapping"
    done
    IFS=$old_ifs
    if [ -n "$cert" ]; then
        echo "tls-listening-port=$tls_port"
        echo "cert=$cert"
        echo "pkey=$key"
        echo "no-tlsv1"
        echo "no-tlsv1_1"
    else
        echo "no-tls"
        echo "no-dtls"
    fi
} >"$tmp"
mv "$tmp" "$output"
trap - EXIT
