#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests (and for measuring): a new cluster in a directory of its own,
# listening on 127.0.0.1 only, on a free port, with its socket in that directory.
#
#   .ci/postgres.sh install          install Debian's postgresql with apt-get when no initdb is found (root only)
#   .ci/postgres.sh start DIR [--durable]
#                                    create DIR (it must not exist or be empty), initdb a cluster in it, start
#                                    it, create the database ptactors_test, print its Npgsql connection string
#                                    as the last line of standard output. Without --durable the server runs
#                                    with fsync, synchronous_commit and full_page_writes off (a test server's
#                                    data is thrown away); with it, PostgreSQL's durable defaults.
#   .ci/postgres.sh stop DIR         stop the server started in DIR and delete DIR
#
# As root, initdb and the server run as the 'postgres' user (PostgreSQL refuses to run as root). The superuser
# 'ptactors' has a random password; connections over TCP need it (scram-sha-256), the socket in DIR does not.
# Exit status: 0 done; 1 failed (the reason on standard error).
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

# The directory of initdb and pg_ctl: the one on PATH, else the newest /usr/lib/postgresql/*/bin.
bindir() {
  local init
  if init=$(command -v initdb 2>/dev/null); then
    dirname "$(readlink -f "$init")"
    return 0
  fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] || return 1
  echo "$d"
}

# Runs a command as the server's owner: 'postgres' when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd=${1:-}
case "$cmd" in
  install)
    if bindir >/dev/null; then exit 0; fi
    [ "$(id -u)" -eq 0 ] || die "no initdb found and not root: install Debian's postgresql package"
    command -v apt-get >/dev/null || die "no initdb found and no apt-get to install postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
    bindir >/dev/null || die "postgresql installed but no initdb found"
    ;;
  start)
    dir=${2:-}
    [ -n "$dir" ] || die "usage: postgres.sh start DIR [--durable]"
    durable=${3:-}
    bin=$(bindir) || die "no initdb found (install Debian's postgresql package)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
    if [ "$(id -u)" -eq 0 ]; then
      id postgres >/dev/null 2>&1 || die "running as root and there is no 'postgres' user to run the server"
      chown postgres "$dir"
    fi
    password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
    pwfile="$dir/pwfile"
    (umask 077; printf '%s\n' "$password" >"$pwfile")
    [ "$(id -u)" -ne 0 ] || chown postgres "$pwfile"
    as_owner "$bin/initdb" -D "$dir/data" -U ptactors --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
    opts="-c listen_addresses=127.0.0.1 -c max_connections=300"
    [ "$durable" = "--durable" ] || opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    started=
    for attempt in 1 2 3 4 5; do
      port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 30000 ))
      port_in_use "$port" && continue
      if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
          -o "-p $port -k $dir $opts" start >/dev/null 2>&1; then
        started=1
        break
      fi
    done
    [ -n "$started" ] || { tail -n 20 "$dir/server.log" >&2 2>/dev/null || true; die "the server did not start"; }
    echo "$port" >"$dir/port"
    as_owner "$bin/createdb" -h "$dir" -p "$port" -U ptactors ptactors_test \
      || { as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true; die "createdb failed"; }
    echo "Host=127.0.0.1;Port=$port;Username=ptactors;Password=$password;Database=ptactors_test"
    ;;
  stop)
    dir=${2:-}
    [ -n "$dir" ] || die "usage: postgres.sh stop DIR"
    [ -d "$dir" ] || exit 0
    if [ -f "$dir/data/postmaster.pid" ]; then
      bin=$(bindir) || die "no pg_ctl found"
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 \
        || as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    die "usage: postgres.sh install | start DIR [--durable] | stop DIR"
    ;;
esac
