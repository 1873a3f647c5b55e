#!/usr/bin/env bash
# Install the services some tests start themselves: PostgreSQL with the pgvector extension.
# Idempotent and tolerant: a failure is reported and the script still exits 0, because the tests that need a
# service skip with a clear reason when it is missing. The Python package `pgserver` (a dev dependency)
# also ships PostgreSQL + pgvector binaries, which the tests use when the system packages lack pgvector
# (Debian 12 has no postgresql-15-pgvector; Debian 13 and the PGDG repository do).
set -u

have_pgvector() {
    local share
    for pg_config in "$(command -v pg_config 2>/dev/null)" /usr/lib/postgresql/*/bin/pg_config; do
        [ -x "$pg_config" ] || continue
        share="$("$pg_config" --sharedir 2>/dev/null)" || continue
        [ -f "$share/extension/vector.control" ] && return 0
    done
    return 1
}

if have_pgvector; then
    echo "install-services: PostgreSQL with pgvector is already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "install-services: not root and no sudo; skipping (pgvector tests use pgserver or skip)"
        exit 0
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-services: no apt-get here; install PostgreSQL + pgvector by hand (tests will skip otherwise)"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || echo "install-services: apt-get update failed (continuing)"
$SUDO apt-get install -y -qq postgresql >/dev/null 2>&1 || echo "install-services: could not install postgresql"
version="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)"
installed=""
for pkg in "postgresql-${version:-15}-pgvector" postgresql-pgvector; do
    if $SUDO apt-get install -y -qq "$pkg" >/dev/null 2>&1; then installed="$pkg"; break; fi
done
if have_pgvector; then
    echo "install-services: PostgreSQL ${version:-?} with pgvector ready (${installed})"
else
    echo "install-services: no pgvector package for PostgreSQL ${version:-?} in the apt sources;" \
        "the tests fall back to the pgserver wheel's binaries"
fi
exit 0
