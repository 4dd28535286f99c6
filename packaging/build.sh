#!/bin/sh
# Build the http_status .deb and .rpm with nfpm (packaging/nfpm.yaml).
#
#   packaging/build.sh [deb|rpm ...]      (default: deb rpm; or `make package`)
#
# Environment:
#   OUT_DIR   where the packages go (default dist/)
#   VERSION   package and --version version (default: from git, see below)
#   GOARCH    target architecture (default: go env GOARCH)
#   MAINTAINER  the packages' Maintainer/Packager and changelog author
#             (default "http_status maintainers"; Debian wants "Name <address>":
#             set it to yours when you build packages for your site)
#   NFPM      nfpm command (default: `go tool nfpm`, the version pinned as a
#             tool dependency in go.mod, built from the module cache, so no
#             network is needed once the cache is warm)
#
# VERSION defaults to packaging/version.sh (the tag, or 0.0.0+git<time>.<commit>).
# The binary is stamped with it and the commit: `http_status --version`.
set -eu

cd "$(dirname "$0")/.."

OUT_DIR=${OUT_DIR:-dist}
GOARCH=${GOARCH:-$(go env GOARCH)}
NFPM=${NFPM:-go tool nfpm}
[ $# -gt 0 ] || set -- deb rpm

MAINTAINER=${MAINTAINER:-http_status maintainers}
VERSION=${VERSION:-$(packaging/version.sh)}
commit=$(packaging/version.sh commit)
case "$VERSION" in
[0-9]*) ;;
*) echo "build.sh: VERSION $VERSION must start with a digit" >&2; exit 2 ;;
esac

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/http_status-stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
trap 'exit 130' INT TERM
export VERSION GOARCH STAGE MAINTAINER

# The binary: static, stamped.
CGO_ENABLED=0 GOOS=linux go build -trimpath \
	-ldflags "-s -w -X main.version=$VERSION -X main.commit=$commit" \
	-o "$STAGE/http_status" ./cmd/http_status

# The man page, regenerated from the flag definitions (the committed copy
# is checked by TestManPageUpToDate), gzipped reproducibly.
# The staged binary writes it when it runs here; built for another
# architecture, a host build does (go run).
if [ "$GOARCH" = "$(go env GOHOSTARCH)" ]; then
	"$STAGE/http_status" --help-man
else
	go run ./cmd/http_status --help-man
fi | gzip -9n >"$STAGE/http_status.8.gz"

# The copyright file: our license and those of every module linked in
# (the .deb's points to Debian's copy of the Apache-2.0 text).
CGO_ENABLED=0 GOOS=linux packaging/copyright.sh >"$STAGE/copyright"
CGO_ENABLED=0 GOOS=linux packaging/copyright.sh --debian >"$STAGE/copyright.deb"

# The changelog (the .deb's changelog.Debian.gz, the .rpm's %changelog):
# one entry, this build, dated by its commit (reproducible).
date=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
short=$(printf %.12s "$commit")
case "$commit" in
*-dirty) built="commit $short, with uncommitted changes" ;;
*) built="commit $short" ;;
esac
cat >"$STAGE/changelog.yaml" <<CHANGELOG
- semver: "$VERSION-1"
  date: "$date"
  packager: "$MAINTAINER"
  deb:
    urgency: medium
    distributions: [unstable]
  changes:
    - note: "Built from $built."
CHANGELOG
# nfpm does not expand variables in the changelog's path: a copy of the
# configuration names it.
{ cat packaging/nfpm.yaml; printf '\nchangelog: %s\n' "$STAGE/changelog.yaml"; } >"$STAGE/nfpm.yaml"

# /usr/share/http_status: the upstart job, and the init-script helpers when
# this tree has them.
install -d "$STAGE/share/upstart"
install -m 0644 contrib/upstart/http_status.conf "$STAGE/share/upstart/http_status.conf"
if [ -f contrib/http_status.functions ]; then
	install -m 0644 contrib/http_status.functions "$STAGE/share/http_status.functions"
fi

# Examples: ours, plus contrib/examples/ (e.g. configuration files) if any.
install -d "$STAGE/examples"
for f in packaging/examples/* contrib/examples/*; do
	[ -f "$f" ] && install -m 0644 "$f" "$STAGE/examples/"
done
install -m 0644 packaging/http_status.default "$STAGE/examples/http_status.default"

# nfpm's own messages go to stderr; stdout is the list of packages built.
mkdir -p "$OUT_DIR"
for p in "$@"; do
	case "$p" in
	deb) glob="$OUT_DIR/http-status_${VERSION}-1_*.deb" ;;
	rpm) glob="$OUT_DIR/http-status-${VERSION}-1.*.rpm" ;;
	*) echo "build.sh: unknown packager $p (want deb or rpm)" >&2; exit 2 ;;
	esac
	$NFPM package --config "$STAGE/nfpm.yaml" --packager "$p" --target "$OUT_DIR/" >&2
	# shellcheck disable=SC2086
	ls -1 $glob
done
