#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server on loopback: THUDO_TEST_POSTGRES names its
# maintenance database (postgres://thudo@127.0.0.1:PORT/postgres, trust authentication, loopback
# only), THUDO_TEST_POSTGRES_CA the CA of its TLS certificate (a throwaway one too). Installs PostgreSQL from Debian's packages when missing. The cluster lives in a
# temporary directory and is stopped and deleted afterwards, whatever the command does.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

BIN=$(pg_bin || true)
if [ -z "$BIN" ]; then
  echo "==> installing postgresql" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  BIN=$(pg_bin)
fi

DIR=$(mktemp -d)
# initdb refuses root: the cluster belongs to the postgres user when run as root.
AS=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DIR" postgres
  chown postgres "$DIR"
  AS=(runuser -u postgres --)
fi
# Cluster commands run from the cluster's directory: the postgres user may not read ours.
pg() { (cd "$DIR" && "${AS[@]}" "$@"); }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
  pg "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap stop EXIT

# TLS with a throwaway CA: the tests connect with verification (THUDO_TEST_POSTGRES_CA).
command -v openssl >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=thudo test CA" -keyout "$DIR/ca.key" -out "$DIR/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$DIR/server.key" -out "$DIR/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$DIR/server.ext"
openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial \
  -days 2 -extfile "$DIR/server.ext" -out "$DIR/server.pem" 2>/dev/null
chmod 600 "$DIR/server.key"
[ "$(id -u)" = 0 ] && chown postgres "$DIR/server.key" "$DIR/server.pem"
pg "$BIN/initdb" -D "$DIR/data" -U thudo --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
# A test server: fsync stays on (the durability under test is the engine's real one); enough
# connections for two instances' pools and the load test.
pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=200 -c shared_buffers=256MB -c ssl=on -c ssl_cert_file=$DIR/server.pem -c ssl_key_file=$DIR/server.key" start >/dev/null \
  || { cat "$DIR/server.log" >&2; exit 1; }

export THUDO_TEST_POSTGRES="postgres://thudo@127.0.0.1:$PORT/postgres"
export THUDO_TEST_POSTGRES_CA="$DIR/ca.pem"
echo "==> PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (throwaway)" >&2
"$@"
