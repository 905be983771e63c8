#!/usr/bin/env bash
# One-time machine setup for building and testing the outbox workspace.
#
# Idempotent: every step checks first and skips what is already in place, so
# `make test` can call it on every run without reinstalling anything.
set -euo pipefail

cd "$(dirname "$0")/.."

PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_CONFIG="${PG_BIN}/pg_config"
PGRX_HOME="${PGRX_HOME:-$HOME/.pgrx}"

APT_PACKAGES=(
    "postgresql-${PG_MAJOR}"
    "postgresql-server-dev-${PG_MAJOR}"
    postgresql-contrib
    libclang-dev
    clang
    pkg-config
    libssl-dev
    sudo
    python3-psycopg2
    "postgresql-${PG_MAJOR}-pgtap"
    make
    nats-server
    # the Redis Streams publisher's tests start their own server
    redis-server
    # the RabbitMQ publisher's tests start their own node (own ports, own epmd)
    rabbitmq-server
    # the pooler the relay is tested behind (pool_mode = transaction)
    pgbouncer
    # make bench's peer (pgmq comes from its crate's embedded SQL instead)
    "postgresql-${PG_MAJOR}-pgq3"
)

say() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: ERROR: %s\n' "$*" >&2
    exit 1
}

# --- privilege escalation --------------------------------------------------
# Root needs no prefix; anyone else goes through sudo for the few system-wide
# changes (apt, ownership of the PostgreSQL extension directories).
if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
else
    command -v sudo >/dev/null 2>&1 ||
        die "not running as root and 'sudo' is not installed; run this script as root once, or install sudo"
    SUDO=(sudo)
fi

is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

# --- apt packages ------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    say "apt packages already installed"
else
    # Installing postgresql-NN makes postgresql-common create and start a
    # 'main' cluster on port 5432. The tests start their own throwaway
    # clusters, so a system cluster would only occupy a port and memory.
    # Turning create_main_cluster off before the install prevents it; the
    # postinst (via ucf) keeps an already existing createcluster.conf when
    # UCF_FORCE_CONFFOLD is set.
    cc_conf=/etc/postgresql-common/createcluster.conf
    if ! is_installed "postgresql-${PG_MAJOR}"; then
        if [[ ! -e "$cc_conf" ]]; then
            say "writing $cc_conf with create_main_cluster = false (no system cluster wanted)"
            "${SUDO[@]}" mkdir -p "$(dirname "$cc_conf")"
            printf '%s\n' \
                '# Written by outbox scripts/setup.sh: tests run their own clusters,' \
                '# so do not create a main cluster when a PostgreSQL server package is installed.' \
                'create_main_cluster = false' |
                "${SUDO[@]}" tee "$cc_conf" >/dev/null
        elif ! grep -Eq '^[[:space:]]*create_main_cluster[[:space:]]*=' "$cc_conf"; then
            # postgresql-common is already there (other major version): only the
            # setting is commented out, so append it rather than rewrite the file.
            say "adding create_main_cluster = false to $cc_conf (no system cluster wanted)"
            printf '%s\n' 'create_main_cluster = false' | "${SUDO[@]}" tee -a "$cc_conf" >/dev/null
        fi
    fi

    # Remember whether the cluster existed before, so the safety net below only
    # ever removes a cluster this run created.
    had_main_cluster=false
    [[ -e "/etc/postgresql/${PG_MAJOR}/main/postgresql.conf" ]] && had_main_cluster=true

    say "installing apt packages: ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 \
        apt-get install -y -q --no-install-recommends "${missing[@]}"

    # Safety net: if a main cluster appeared anyway (e.g. the config already
    # said create_main_cluster = true explicitly), it is brand new and empty,
    # so dropping it loses nothing.
    if [[ "$had_main_cluster" == false && -e "/etc/postgresql/${PG_MAJOR}/main/postgresql.conf" ]]; then
        say "dropping the ${PG_MAJOR}/main cluster the package install just created (tests use their own)"
        "${SUDO[@]}" pg_dropcluster --stop "$PG_MAJOR" main
    fi
fi

[[ -x "$PG_CONFIG" ]] || die "$PG_CONFIG not found after installing postgresql-server-dev-${PG_MAJOR}"
id postgres >/dev/null 2>&1 || die "the 'postgres' OS user does not exist (it is created by the postgresql-common package)"

# --- Rust toolchain ----------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found; install a Rust toolchain first (https://rustup.rs), then re-run"
say "cargo: $(cargo --version)"

# --- cargo-pgrx --------------------------------------------------------------
# cargo-pgrx must match the pgrx crate version exactly, so take it from the
# extension's manifest instead of hard-coding it here.
PGRX_VERSION="$(sed -nE 's/^[[:space:]]*pgrx[[:space:]]*=[^0-9]*([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' outbox_ext/Cargo.toml | head -n1)"
[[ -n "$PGRX_VERSION" ]] || die "could not find the pinned pgrx version in outbox_ext/Cargo.toml"

pgrx_version_ok() {
    local out
    out="$(cargo pgrx --version 2>/dev/null)" || return 1
    [[ " $out " == *" $PGRX_VERSION "* ]]
}

# A second concurrent `cargo install` of the same crate would only duplicate a
# long compile, so wait for one that is already running (e.g. image provisioning).
if ! pgrx_version_ok && pgrep -f "cargo install cargo-pgrx" >/dev/null 2>&1; then
    say "a 'cargo install cargo-pgrx' is already running; waiting for it to finish"
    while pgrep -f "cargo install cargo-pgrx" >/dev/null 2>&1; do sleep 5; done
fi

if pgrx_version_ok; then
    say "cargo-pgrx $PGRX_VERSION already installed"
else
    say "installing cargo-pgrx $PGRX_VERSION (takes several minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    pgrx_version_ok || die "cargo pgrx --version does not report $PGRX_VERSION after install"
fi

# --- cargo pgrx init ---------------------------------------------------------
# Point pgrx at the distro PostgreSQL instead of letting it download and build
# its own copies (no network besides package registries, and it saves ~20 min).
pgrx_config="$PGRX_HOME/config.toml"
if [[ -f "$pgrx_config" ]] &&
    grep -Eq "^[[:space:]]*pg${PG_MAJOR}[[:space:]]*=[[:space:]]*\"${PG_CONFIG}\"" "$pgrx_config"; then
    say "pgrx already initialised for pg${PG_MAJOR} ($PG_CONFIG)"
else
    say "running cargo pgrx init --pg${PG_MAJOR} $PG_CONFIG"
    cargo pgrx init "--pg${PG_MAJOR}" "$PG_CONFIG"
fi

# --- extension install directories -----------------------------------------
# `cargo pgrx install` / `cargo pgrx test` copy outbox.so into pkglibdir and the
# control/SQL files into sharedir/extension. Root can write there; an ordinary
# user needs ownership (pgrx does not use sudo unless told to).
if [[ "$(id -u)" -ne 0 ]]; then
    me="$(id -un)"
    pkglibdir="$("$PG_CONFIG" --pkglibdir)"
    extdir="$("$PG_CONFIG" --sharedir)/extension"
    if [[ -w "$pkglibdir" ]]; then
        say "$pkglibdir is writable"
    else
        say "chown $me $pkglibdir (so cargo pgrx install can write outbox.so without sudo)"
        "${SUDO[@]}" chown "$me" "$pkglibdir"
    fi
    # A copy left behind by an earlier root install would not be overwritable.
    for f in "$pkglibdir"/outbox.so "$pkglibdir"/outbox-*.so; do
        if [[ -e "$f" && ! -w "$f" ]]; then
            say "chown $me $f (left by an earlier install as another user)"
            "${SUDO[@]}" chown "$me" "$f"
        fi
    done
    if [[ -w "$extdir" ]] && [[ -z "$(find "$extdir" ! -user "$me" -name 'outbox*' -print -quit)" ]]; then
        say "$extdir is writable"
    else
        say "chown -R $me $extdir (so cargo pgrx install can write the control/SQL files without sudo)"
        "${SUDO[@]}" chown -R "$me" "$extdir"
    fi
fi

say "done"
