#!/bin/sh
# `make images` and `make bases` (see images/README.md):
#
#   images/build.sh agents NAME...   each agent's image, on the bases BASES
#                                    names; BASES=local makes the local bases
#                                    it needs first, when they are missing
#   images/build.sh bases [NAME...]  the local bases (every one without names)
#
# The Makefile's variables arrive in the environment: DOCKER, BASES (published
# or local), LOCAL_BASES ("node=TAG python=TAG"), DEBIAN_BASE, DEBIAN_MIRROR,
# DEBIAN_SECURITY_MIRROR, MMDEBSTRAP, HOST_CA_BUNDLE and FORCE (rebuild the
# local bases even when their tags exist). One failure stops nothing else:
# whatever can be built is, then the script fails naming what was not.

set -u
cd "$(dirname "$0")/.."
here=$(pwd)

table=images/agents/agents.txt
to_build=images/agents/docker-build.awk

# Once per run, whatever FORCE says: every base shares one Debian root.
debian=

# mmdebstrap's output, removed however the script ends.
tmp=
trap 'rm -rf "${tmp:-/nonexistent}"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Fails, with a line on stderr, unless a local base of that name exists.
local_tag() {
    for pair in $LOCAL_BASES; do
        if [ "${pair%%=*}" = "$1" ]; then
            echo "${pair#*=}"
            return 0
        fi
    done
    echo "make $target: no local base \`$1\` (LOCAL_BASES: $LOCAL_BASES)" >&2
    return 1
}

# Present, and not to be rebuilt.
is_built() {
    [ -z "$FORCE" ] && $DOCKER image inspect "$1" >/dev/null 2>&1
}

# A minimal Debian bookworm, bootstrapped from the mirror and imported: the
# root both local bases are built on, trusting the host's certificate
# authorities (see host-cas.awk). mmdebstrap writes a file first, as a failure
# halfway through a pipe into `docker import` would still import what it got.
debian_root() {
    case $debian in
        built) return 0 ;;
        failed) return 1 ;;
    esac
    debian=failed
    if is_built "$DEBIAN_BASE"; then
        debian=built
        return 0
    fi
    if ! command -v "$MMDEBSTRAP" >/dev/null; then
        echo "make $target: $MMDEBSTRAP is not installed (make engine installs it; apt-get install mmdebstrap)" >&2
        return 1
    fi
    if [ ! -r "$HOST_CA_BUNDLE" ]; then
        echo "make $target: cannot read the host's CA bundle $HOST_CA_BUNDLE (HOST_CA_BUNDLE=FILE names another)" >&2
        return 1
    fi
    case $HOST_CA_BUNDLE in
        /*) ;;
        *) HOST_CA_BUNDLE=$here/$HOST_CA_BUNDLE ;;
    esac
    tmp=$(mktemp -d) || return 1
    # The authorities the host's distribution ships (Debian's and Ubuntu's
    # place for them), which are not the host's own: see host-cas.awk.
    find /usr/share/ca-certificates -name '*.crt' -exec cat {} + >"$tmp/distribution.pem" 2>/dev/null
    cas=/usr/local/share/ca-certificates/host
    # Recommends, documentation and translations are left out, as Debian's
    # slim images leave them out; the options stay in the root for every
    # later apt-get. /usr is merged as debootstrap merges it: without the
    # hook, apt would pull in the usrmerge package, and Perl with it.
    # mmdebstrap copies the host's resolv.conf and hostname in: they are the
    # host's business, and the engine mounts its own.
    set -- --variant=minbase --include=ca-certificates \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/groff/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --customize-hook="mkdir -p \"\$1$cas\" && awk -v dir=\"\$1$cas\" -f '$here/images/bases/host-cas.awk' \"\$1/etc/ssl/certs/ca-certificates.crt\" '$tmp/distribution.pem' '$HOST_CA_BUNDLE'" \
        --customize-hook='chroot "$1" update-ca-certificates' \
        --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"' \
        bookworm "$tmp/root.tar" \
        "deb $DEBIAN_MIRROR bookworm main" \
        "deb $DEBIAN_MIRROR bookworm-updates main" \
        "deb $DEBIAN_SECURITY_MIRROR bookworm-security main"
    printf '%s\n' "$MMDEBSTRAP $*"
    # The system bundle, the host's authorities included, for the programs
    # that keep their own: Node's built-in list, pip's and requests' certifi.
    # A Docker import has no PATH of its own, and `ENV PATH=...:$PATH` in a
    # Dockerfile would lose the rest of it.
    bundle=/etc/ssl/certs/ca-certificates.crt
    if "$MMDEBSTRAP" "$@" &&
        $DOCKER import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change "ENV SSL_CERT_FILE=$bundle NODE_EXTRA_CA_CERTS=$bundle PIP_CERT=$bundle REQUESTS_CA_BUNDLE=$bundle" \
            --change 'CMD ["bash"]' \
            "$tmp/root.tar" "$DEBIAN_BASE"; then
        debian=built
    fi
    rm -rf "$tmp"
    tmp=
    [ "$debian" = built ]
}

# The local base NAME, from images/bases/NAME.Dockerfile on the Debian root.
base() {
    tag=$(local_tag "$1") || return 1
    if is_built "$tag"; then
        echo "$tag is built (FORCE=1 builds it again)"
        return 0
    fi
    debian_root || return 1
    set -- build -f "images/bases/$1.Dockerfile" --build-arg "DEBIAN=$DEBIAN_BASE" -t "$tag" images/bases
    printf '%s\n' "$DOCKER $*"
    $DOCKER "$@"
}

bases() {
    [ $# -gt 0 ] || set -- $(for pair in $LOCAL_BASES; do echo "${pair%%=*}"; done)
    failed=
    for name; do
        base "$name" || failed="$failed $name"
    done
    if [ -n "$failed" ]; then
        echo "make bases: failed:$failed (see above)" >&2
        exit 1
    fi
}

agents() {
    case $BASES in
        published) given= ;;
        local) given=$LOCAL_BASES ;;
        *)
            echo "make images: BASES=$BASES: published (the default) or local" >&2
            exit 2
            ;;
    esac
    failed=
    ready=
    missing=
    for agent; do
        if [ "$BASES" = local ]; then
            # Each base once, when the first agent on it comes: a base that
            # failed fails its agents and leaves the others to be built.
            name=$(awk -v agent="$agent" -v show=base -f "$to_build" "$table") || {
                failed="$failed $agent"
                continue
            }
            case " $ready $missing " in
                *" $name "*) ;;
                *) if base "$name"; then ready="$ready $name"; else missing="$missing $name"; fi ;;
            esac
            case " $missing " in
                *" $name "*)
                    echo "make images: $agent is not built: its base, $name, was not (see above)" >&2
                    failed="$failed $agent"
                    continue
                    ;;
            esac
        fi
        # printf, as dash's echo would print image_file_text's \n as a line
        # break: the command shown would not be the one run.
        build=$(awk -v agent="$agent" -v docker="$DOCKER" -v bases="$given" -f "$to_build" "$table") &&
            printf '%s\n' "$build" && eval "$build" || failed="$failed $agent"
    done
    if [ -n "$failed" ]; then
        hint=
        [ "$BASES" = local ] || hint="; with no registry, BASES=local builds on bases made here"
        echo "make images: failed:$failed (see above$hint)" >&2
        exit 1
    fi
}

target=${1:-}
[ $# -gt 0 ] && shift
: "${DOCKER:=docker}" "${BASES:=published}" "${FORCE:=}" "${MMDEBSTRAP:=mmdebstrap}"
: "${HOST_CA_BUNDLE:=/etc/ssl/certs/ca-certificates.crt}"
: "${DEBIAN_MIRROR:=http://deb.debian.org/debian}"
: "${DEBIAN_SECURITY_MIRROR:=http://deb.debian.org/debian-security}"
: "${DEBIAN_BASE:?}" "${LOCAL_BASES:?}"
case $target in
    agents) target=images && agents "$@" ;;
    bases) bases "$@" ;;
    *)
        echo "usage: images/build.sh agents NAME... | bases [NAME...] (make images, make bases)" >&2
        exit 2
        ;;
esac
