//go:build linux

package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// systemdOnly are the shipped files read only by systemd: they name the
// status directory /run/http_status (tmpfiles.d warns about paths under
// the legacy /var/run), the same directory as /var/run/http_status
// wherever systemd runs.
var systemdOnly = map[string]bool{
	"systemd/http_status.service":    true,
	"systemd/http_status.socket":     true,
	"systemd/http_status.sysusers":   true,
	"packaging/http_status.tmpfiles": true,
}

// TestDefaultDirEverywhere greps every shipped file (contrib/, packaging/,
// systemd/, README.md and the man page) for the status directory. Where
// /var/run is not a link to /run (older hosts without systemd, where the
// SysV script runs), /run/http_status and /var/run/http_status are two
// directories, and flags written to one are not seen by a daemon watching
// the other. So every file that may run without systemd names
// /var/run/http_status, the original tool's and the daemon's default;
// only the files systemd reads, and the parts of the manuals about
// systemd, name /run/http_status.
func TestDefaultDirEverywhere(t *testing.T) {
	if DefaultDir != "/var/run/http_status" {
		t.Fatalf("DefaultDir = %q, want the original's /var/run/http_status", DefaultDir)
	}
	root := filepath.Join("..", "..")
	var files []string
	for _, top := range []string{"contrib", "packaging", "systemd"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || strings.HasSuffix(p, ".go") {
				return nil // Go files under packaging/ are its tests
			}
			files = append(files, p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	files = append(files, filepath.Join(root, "README.md"))

	named := 0
	for _, p := range files {
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		manual := rel == "README.md" || strings.HasSuffix(rel, ".8")
		for _, m := range dirMentions(text) {
			named++
			switch {
			case systemdOnly[rel]:
				if m.legacy {
					t.Errorf("%s:%d: names /var/run/http_status; files systemd reads use /run/http_status", rel, m.line)
				}
			case m.legacy:
			case manual && aboutSystemd(m.paragraph):
			default:
				t.Errorf("%s:%d: names /run/http_status; without systemd that need not be /var/run/http_status, the default (%q)", rel, m.line, strings.TrimSpace(m.text))
			}
		}
	}
	if named < 10 {
		t.Errorf("only %d mentions of the status directory found in %d files: is the walk right?", named, len(files))
	}

	// The defaults themselves, one per file that has one.
	for file, want := range map[string]string{
		"contrib/init.d/http_status":       "\nHTTP_STATUS_DIR=/var/run/http_status\n",
		"contrib/upstart/http_status.conf": "HTTP_STATUS_DIR=/var/run/http_status\n",
		"contrib/http_status.functions":    "${HTTP_STATUS_DIR:-/var/run/http_status}",
		"packaging/http_status.default":    "#HTTP_STATUS_DIR=/var/run/http_status\n",
		"systemd/http_status.service":      "--dir /run/http_status ",
		"packaging/http_status.tmpfiles":   "d /run/http_status ",
	} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
	var help strings.Builder
	if code := realMain([]string{"help"}, &help, &help); code != 0 || !strings.Contains(help.String(), "(default /var/run/http_status)") {
		t.Errorf("http_status help (exit %d) does not give /var/run/http_status as the default:\n%s", code, help.String())
	}
}

// dirMention is one mention of the status directory (not of the pidfile
// /run/http_status.pid).
type dirMention struct {
	legacy    bool // /var/run/http_status
	line      int
	text      string // the line
	paragraph string
}

func dirMentions(text string) []dirMention {
	var out []dirMention
	const dir = "/run/http_status"
	for i := 0; ; {
		j := strings.Index(text[i:], dir)
		if j < 0 {
			return out
		}
		at := i + j
		i = at + len(dir)
		if strings.HasPrefix(text[i:], ".pid") {
			continue
		}
		m := dirMention{legacy: at >= 4 && text[at-4:at] == "/var", line: 1 + strings.Count(text[:at], "\n")}
		ls := strings.LastIndexByte(text[:at], '\n') + 1
		le := strings.IndexByte(text[at:], '\n')
		if le < 0 {
			le = len(text) - at
		}
		m.text = text[ls : at+le]
		m.paragraph = paragraphAt(text, at)
		out = append(out, m)
	}
}

// paragraphAt is the paragraph around offset at: lines between blank lines
// (Markdown) or paragraph macros (.TP, .PP, .SH in troff).
func paragraphAt(text string, at int) string {
	lines := strings.SplitAfter(text, "\n")
	off, idx := 0, 0
	for k, l := range lines {
		if off+len(l) > at {
			idx = k
			break
		}
		off += len(l)
	}
	brk := func(l string) bool {
		l = strings.TrimSpace(l)
		return l == "" || strings.HasPrefix(l, ".TP") || strings.HasPrefix(l, ".PP") || strings.HasPrefix(l, ".SH")
	}
	s, e := idx, idx
	for s > 0 && !brk(lines[s-1]) {
		s--
	}
	for e+1 < len(lines) && !brk(lines[e+1]) {
		e++
	}
	return strings.Join(lines[s:e+1], "")
}

func aboutSystemd(paragraph string) bool {
	for _, w := range []string{"systemd", "RuntimeDirectory", "tmpfiles"} {
		if strings.Contains(paragraph, w) {
			return true
		}
	}
	return false
}
