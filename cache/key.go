package cache

// MaxNameLen bounds a flag-file name (service, dot, port). Linux allows 255
// bytes in a file name; we keep a margin for editors' temp suffixes.
const MaxNameLen = 200

// DefaultService is the flag consulted when a request names no SERVICE,
// as in the original tool.
const DefaultService = "status.html"

// ValidName reports whether name may be a flag-file name, and so a key of a
// [Snapshot]. The same rule applies to files the watcher sees and to names a
// request builds, so a request can only ever name a file directly in the
// status directory:
//
//   - 1..MaxNameLen bytes of ASCII letters, digits and . _ - @ + :
//   - not starting with a dot (dot-files are editors' and tools' temp files,
//     and this also excludes "." and "..")
//   - not ending in ".tmp" or "~" (temp files that are renamed into place)
//
// No slash, NUL, space or control character can pass.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > MaxNameLen || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return false
		}
	}
	if name[len(name)-1] == '~' {
		return false
	}
	if n := len(name); n >= 4 && name[n-4:] == ".tmp" {
		return false
	}
	return true
}

func nameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '.', '_', '-', '@', '+', ':':
		return true
	}
	return false
}
