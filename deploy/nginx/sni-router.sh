#!/bin/sh
# The front of the deployment on TCP 443 (deploy/docker-compose.yml, service sni-router): nginx's
# stream module reads the name each TLS client asks for (SNI) without decrypting anything, and
#   - TURN_HOST: terminates TLS with the certificate Caddy keeps for that name, and passes the
#     plain TURN stream on to coturn's TCP listener (turns:TURN_HOST:443 for browsers);
#   - any other name: passes the connection on untouched to Caddy, which serves the web client
#     and its wss:// with certificates of its own.
# ACME's TLS-ALPN challenge (ALPN acme-tls/1) goes to Caddy whatever the name, so Caddy can
# obtain certificates for both names on 443 as well as on 80.
#
#   sni-router.sh run      write the config, run nginx in the foreground, and every
#                          PROXY_REFRESH seconds look at TURN_HOST's certificate: when it appears
#                          or is renewed, reload nginx (running connections are kept)
#   sni-router.sh render   only write the config, and say whether TURN over TLS is on
#
# Until Caddy has TURN_HOST's certificate, TURN over TLS is off and the web is served anyway.
#
# Environment:
#   TURN_HOST (required)  WEB_HOST (optional: only checked to differ from TURN_HOST)
#   PROXY_LISTEN=443                  where nginx listens (a bare port: every IPv4 address)
#   WEB_BACKEND=127.0.0.1:8443        Caddy's HTTPS port
#   TURN_BACKEND=127.0.0.1:3478       coturn's TCP listener (TURN_LISTENING_PORT)
#   TURN_TLS_INTERNAL=127.0.0.1:5350  nginx's own TLS terminator for TURN (loopback)
#   CADDY_CERTS=/caddy-data/caddy/certificates   Caddy's certificate storage (read-only)
#   PROXY_DIR=/run/sni-router         the rendered config and nginx's pid file
#   PROXY_REFRESH=60  NGINX_BIN=nginx
set -eu

fail() {
    echo "sni-router: $*" >&2
    exit 1
}

say() {
    echo "sni-router: $*" >&2
}

mode=${1:-run}
case $mode in
    run | render) ;;
    *) fail "usage: sni-router.sh [run|render]" ;;
esac

turn_host=$(printf '%s' "${TURN_HOST:-}" | tr '[:upper:]' '[:lower:]')
web_host=$(printf '%s' "${WEB_HOST:-}" | tr '[:upper:]' '[:lower:]')
[ -n "$turn_host" ] || fail "TURN_HOST is not set (e.g. turn.example.org)"
case $turn_host in
    *[!a-z0-9.-]*) fail "TURN_HOST must be a domain name, not '$turn_host'" ;;
esac
[ "$turn_host" != "$web_host" ] ||
    fail "TURN_HOST and WEB_HOST are both '$turn_host': port 443 tells them apart by name, so give TURN a name of its own"

listen=${PROXY_LISTEN:-443}
web_backend=${WEB_BACKEND:-127.0.0.1:8443}
turn_backend=${TURN_BACKEND:-127.0.0.1:3478}
turn_internal=${TURN_TLS_INTERNAL:-127.0.0.1:5350}
certs=${CADDY_CERTS:-/caddy-data/caddy/certificates}
dir=${PROXY_DIR:-/run/sni-router}
refresh=${PROXY_REFRESH:-60}
nginx=${NGINX_BIN:-nginx}

# Each of these goes into nginx's config as it is: an address, or host:port.
for pair in "PROXY_LISTEN=$listen" "WEB_BACKEND=$web_backend" "TURN_BACKEND=$turn_backend" \
    "TURN_TLS_INTERNAL=$turn_internal"; do
    case ${pair#*=} in
        '' | *[!A-Za-z0-9.:-]*) fail "${pair%%=*} must be a port or an address:port, not '${pair#*=}'" ;;
    esac
done
case $refresh in
    '' | *[!0-9]* | 0) fail "PROXY_REFRESH must be a number of seconds, not '$refresh'" ;;
esac
case $certs$dir in
    *[!A-Za-z0-9/._-]*) fail "CADDY_CERTS and PROXY_DIR must be plain paths" ;;
esac

conf=$dir/nginx.conf
turn_conf=$dir/turn-tls.conf
mkdir -p "$dir"

# TURN_HOST's certificate as Caddy stores it, newest first: there is one directory per issuer
# (Let's Encrypt, ZeroSSL, ...). Empty when there is none yet.
turn_cert() {
    # shellcheck disable=SC2012 # names are checked above: no spaces, no newlines
    ls -t "$certs"/*/"$turn_host"/"$turn_host".crt 2>/dev/null | head -n 1
}

# What identifies the certificate in use: changes when it appears, is renewed or goes away.
signature() {
    crt=$(turn_cert)
    if [ -n "$crt" ]; then
        cksum "$crt" "${crt%.crt}.key" 2>/dev/null || true
    fi
}

# The TLS terminator for TURN, or nothing without a readable certificate. Sets $turn_with to
# the certificate used, or to nothing.
render_turn() {
    crt=$(turn_cert)
    key=${crt%.crt}.key
    turn_with=
    if [ -n "$crt" ] && [ -r "$crt" ] && [ -r "$key" ]; then
        turn_with=$crt
        cat >"$turn_conf.tmp" <<EOF
# turns:$turn_host:443 — TLS ends here, plain TURN goes on to coturn's TCP listener.
server {
    listen $turn_internal ssl;
    ssl_certificate     $crt;
    ssl_certificate_key $key;
    ssl_protocols       TLSv1.2 TLSv1.3;
    proxy_pass $turn_backend;
    proxy_connect_timeout 5s;
    proxy_timeout 1h;
}
EOF
    else
        echo "# No certificate for $turn_host in $certs yet: TURN over TLS is off." >"$turn_conf.tmp"
        say "no certificate for $turn_host in $certs yet: TURN over TLS is off until Caddy has one"
    fi
    mv "$turn_conf.tmp" "$turn_conf"
}

# Distribution packages (Debian's libnginx-mod-stream) build the stream module as a module of
# its own; the official nginx image has it built in.
load_stream=
if "$nginx" -V 2>&1 | grep -q -- '--with-stream=dynamic'; then
    modules=$("$nginx" -V 2>&1 | tr ' ' '\n' | sed -n 's/^--modules-path=//p')
    load_stream="load_module ${modules:-modules}/ngx_stream_module.so;"
fi

cat >"$conf.tmp" <<EOF
# Rendered by sni-router.sh at every start; edit that script, not this file.
$load_stream
worker_processes auto;
pid $dir/nginx.pid;
error_log stderr notice;

events {
    worker_connections 4096;
}

stream {
    # TURN_HOST's TLS goes to the TURN terminator; every other name (and none) to Caddy.
    map \$ssl_preread_server_name \$cromulent_by_name {
        $turn_host  $turn_internal;
        default     $web_backend;
    }
    # ACME's TLS-ALPN-01 challenge is Caddy's, whatever the name.
    map \$ssl_preread_alpn_protocols \$cromulent_backend {
        acme-tls/1  $web_backend;
        default     \$cromulent_by_name;
    }

    server {
        listen $listen;
        ssl_preread on;
        proxy_pass \$cromulent_backend;
        proxy_connect_timeout 5s;
        # Idle limit of one connection. Never reached by a live one: the server pings every
        # WebSocket every 5 s, and TURN clients refresh their allocations within minutes.
        proxy_timeout 1h;
    }

    include $turn_conf;
}
EOF
mv "$conf.tmp" "$conf"
render_turn

if [ "$mode" = render ]; then
    [ -z "$turn_with" ] || say "TURN over TLS for $turn_host uses $turn_with"
    exit 0
fi

# After nginx has accepted the config (nginx -t).
turn_on() {
    [ -z "$turn_with" ] || say "TURN over TLS for $turn_host is on, with $turn_with"
}

# A certificate nginx cannot load (half written, key not matching yet) must not keep the web
# down: leave it out, and try again when the files change.
turn_off() {
    echo "# The certificate for $turn_host does not load (yet): TURN over TLS is off." >"$turn_conf"
    say "the certificate for $turn_host does not load (yet); trying again when it changes: $1"
}

seen=$(signature)
if "$nginx" -t -q -c "$conf"; then
    turn_on
else
    turn_off "TURN over TLS is off"
    "$nginx" -t -q -c "$conf" || fail "nginx refuses the rendered config $conf"
fi

# Watch the certificate while nginx runs (this shell's pid becomes nginx's below).
nginx_pid=$$
(
    set +e
    while sleep "$refresh"; do
        kill -0 "$nginx_pid" 2>/dev/null || exit 0
        now=$(signature)
        [ "$now" = "$seen" ] && continue
        seen=$now
        render_turn
        if "$nginx" -t -q -c "$conf"; then
            turn_on
            "$nginx" -s reload -c "$conf" && say "reloaded nginx"
        else
            turn_off "nginx keeps what it had"
        fi
    done
) &

exec "$nginx" -c "$conf" -g 'daemon off;'
