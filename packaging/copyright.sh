#!/bin/sh
# Print the packages' copyright file (Debian's machine-readable format,
# https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/):
# http_status's own license, Apache-2.0, then the license and notice files
# of every module linked into the binary and of the Go standard library,
# found with go list in the module cache. A static binary carries their
# code, and the BSD and MIT licenses ask that their notices go with it.
#
#   packaging/copyright.sh [--debian] > copyright      (packaging/build.sh runs it)
#
# --debian: an Apache-2.0 text is not quoted but pointed to in
# /usr/share/common-licenses (Debian policy 12.5; lintian
# copyright-file-contains-full-apache-2-license); NOTICE files, which
# Apache-2.0 asks to pass on, are quoted still. The .rpm's copy quotes it.
#
# Run from the repository root, with the environment of the build
# (GOOS, GOARCH, CGO_ENABLED decide which modules are linked).
set -eu

# indent prints a file as the text of a License or Comment field: each line
# indented by one space, empty lines as " ." (a bare newline ends a field).
indent() {
	sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' "$1"
}

debian=
if [ "${1:-}" = --debian ]; then
	debian=1
fi

# license_text prints a license file as a field's text: indented, or, with
# --debian and an Apache-2.0 text, where Debian systems keep it.
license_text() {
	if [ -n "$debian" ] && [ "$(license_id "$1")" = Apache-2.0 ]; then
		printf ' On Debian systems the complete text of the Apache License, Version 2.0,\n'
		printf ' is in /usr/share/common-licenses/Apache-2.0.\n'
	else
		indent "$1"
	fi
}

# license_id names a license text in SPDX terms (Debian's short names),
# "other" when it is none of the usual ones.
license_id() {
	if grep -q 'Apache License' "$1" && grep -q 'Version 2.0' "$1"; then
		echo Apache-2.0
	elif grep -q 'Permission is hereby granted, free of charge' "$1"; then
		echo Expat
	elif grep -q 'Neither the name' "$1"; then
		echo BSD-3-Clause
	elif grep -q 'Redistribution and use in source and binary forms' "$1"; then
		echo BSD-2-Clause
	else
		echo other
	fi
}

cat <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: http_status
Upstream-Contact: http_status maintainers <https://github.com/http-status/http_status/issues>
Source: https://github.com/http-status/http_status
Comment: /usr/sbin/http_status is a static Go binary: besides http_status
 itself it contains the Go standard library and the Go modules listed
 below (paths as `go mod vendor` would place them), under their own
 licenses, whose texts follow.

Files: *
Copyright: http_status maintainers
License: Apache-2.0
EOF
license_text LICENSE

goroot=$(go env GOROOT)
printf '\nFiles: vendor/std/*\nCopyright: The Go Authors (Go %s standard library)\nLicense: BSD-3-Clause\n' "$(go env GOVERSION)"
indent "$goroot/LICENSE"

go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' ./cmd/http_status |
	sort -u |
	while read -r path version dir; do
		found=
		for f in "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* "$dir"/NOTICE*; do
			[ -f "$f" ] || continue
			if [ -z "$found" ]; then
				case "$(basename "$f")" in NOTICE*) continue ;; esac
				found=1
				printf '\nFiles: vendor/%s/*\nCopyright: the authors of %s %s\nLicense: %s\n' \
					"$path" "$path" "$version" "$(license_id "$f")"
			else
				# More texts of the same module (a second license for
				# part of it, a NOTICE) follow in the same field.
				printf ' .\n %s:\n' "$(basename "$f")"
			fi
			license_text "$f"
		done
		if [ -z "$found" ]; then
			echo "copyright.sh: module $path $version has no license file in $dir" >&2
			exit 1
		fi
	done
