#!/bin/sh
# Print the version (or, with "commit", the commit) that packages and
# `make build` stamp into the binary (-X main.version, -X main.commit).
#
# The version is the last tag vX.Y.Z without the v when HEAD is that tag,
# else X.Y.Z+git<commit time>.<short commit> (0.0.0+git... before the first
# tag), which sorts after X.Y.Z and before the next release in dpkg and rpm
# alike. The commit gets "-dirty" when tracked files are modified.
set -eu
cd "$(dirname "$0")/.."

if [ "${1:-}" = commit ]; then
	c=$(git rev-parse HEAD 2>/dev/null || echo unknown)
	if [ "$c" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
		c=$c-dirty
	fi
	echo "$c"
	exit 0
fi
tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)
if [ -n "$tag" ] && [ "$(git rev-parse "$tag^{commit}")" = "$(git rev-parse HEAD)" ]; then
	echo "${tag#v}"
	exit 0
fi
base=${tag#v}
when=$(git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null || date -u +%Y%m%d%H%M%S)
echo "${base:-0.0.0}+git$when.$(git rev-parse --short=12 HEAD 2>/dev/null || echo 0)"
