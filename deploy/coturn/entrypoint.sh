#!/bin/sh
# Container entrypoint for coturn: render the config from the environment, then run coturn
# in the foreground with it. Arguments are passed on to turnserver (e.g. --verbose).
set -eu

template=${TURN_TEMPLATE:-/etc/coturn/turnserver.conf.template}
config=${TURN_CONFIG:-/run/coturn/turnserver.conf}

/usr/local/bin/render-config.sh "$template" "$config"
echo "entrypoint: rendered $config (realm ${TURN_REALM}, relay ports ${TURN_MIN_PORT:-49152}-${TURN_MAX_PORT:-50151})" >&2
exec turnserver -c "$config" "$@"
