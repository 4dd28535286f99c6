//go:build linux

package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var updateMan = flag.Bool("update-man", false, "rewrite contrib/http_status.8 from the flag definitions")

var manPath = filepath.Join("..", "..", "contrib", "http_status.8")

// TestManPageUpToDate fails when the committed man page is not what
// --help-man prints now (a flag was added or its help changed). Fix: make man
// (or go test ./cmd/http_status -run TestManPageUpToDate -update-man).
func TestManPageUpToDate(t *testing.T) {
	want := manPage()
	if *updateMan {
		if err := os.WriteFile(manPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(manPath)
	if err != nil {
		t.Fatalf("read the committed man page: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: regenerate it with `make man` and commit it", manPath)
	}
	var out, errb bytes.Buffer
	if code := realMain([]string{"--help-man"}, &out, &errb); code != 0 || !bytes.Equal(out.Bytes(), want) {
		t.Errorf("--help-man: exit %d, stderr %q, output differs from manPage: %v", code, errb.String(), !bytes.Equal(out.Bytes(), want))
	}
}

// TestManPageMatchesHelp checks that every flag --help lists is in OPTIONS,
// with its default, and that the page has every section it promises.
func TestManPageMatchesHelp(t *testing.T) {
	page := string(manPage())
	var help bytes.Buffer
	if _, err := parseFlags([]string{"--help"}, &help); err != flag.ErrHelp {
		t.Fatalf("--help: %v", err)
	}
	fs := newFlagSet(&Config{}, io.Discard)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(help.String(), "  -"+f.Name) {
			t.Errorf("--help does not list -%s", f.Name)
		}
		dashes := `\-\-`
		if len(f.Name) == 1 {
			dashes = `\-`
		}
		if !strings.Contains(page, `\fB`+dashes+roffEscape(f.Name)+`\fR`) {
			t.Errorf("man page does not list %s%s", strings.ReplaceAll(dashes, `\`, ""), f.Name)
		}
		if def, ok := nonZeroDefault(f); ok && !strings.Contains(page, roffEscape("(default "+def+")")) {
			t.Errorf("man page lacks the default of --%s (%s)", f.Name, def)
		}
	})
	if n < 10 {
		t.Fatalf("only %d flags visited", n)
	}
	for _, sec := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "THE /status CONTRACT", "FILES", "SIGNALS", "SEE ALSO"} {
		if !strings.Contains(page, "\n.SH "+sec+"\n") {
			t.Errorf("man page has no section %s", sec)
		}
	}
	if strings.Contains(page, `\-\-help\-man`) || strings.Contains(help.String(), "help-man") {
		t.Error("--help-man is meant to stay hidden")
	}
}

// TestManPageRenders formats the committed page with groff's warnings on:
// any warning (a bad macro, an unescaped control line) fails.
func TestManPageRenders(t *testing.T) {
	t.Parallel()
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed (Debian package groff-base)")
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-rLL=80n", manPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, stderr.String())
	}
	text := string(out)
	for _, want := range []string{"--pidfile", "/etc/default/http_status", "SIGHUP"} {
		if !strings.Contains(stripOverstrike(text), want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
}

// stripOverstrike removes groff's tty bold/underline (x\bx, _\bx) and SGR
// escapes, leaving plain text.
func stripOverstrike(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i := 0; i < len(r); i++ {
		if i+1 < len(r) && r[i+1] == '\b' {
			i++ // drop the overstruck char and the backspace
			continue
		}
		if r[i] == 0x1b { // CSI ... m
			for i < len(r) && r[i] != 'm' {
				i++
			}
			continue
		}
		b.WriteRune(r[i])
	}
	return b.String()
}

// TestReadmeFlagsMatchHelp: README's flag table lists exactly the flags
// --help lists, with the same one-letter aliases and the same defaults.
func TestReadmeFlagsMatchHelp(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(b)
	i := strings.Index(sec, "\n## Flags\n")
	if i < 0 {
		t.Fatal(`README has no "## Flags" section`)
	}
	sec = sec[i+1:]
	if j := strings.Index(sec[3:], "\n## "); j >= 0 {
		sec = sec[:j+3]
	}
	type row struct{ names, def string }
	readme := map[string]row{} // long name -> its row
	flagName := regexp.MustCompile("`(-{1,2}[a-z0-9-]+)`")
	firstCode := regexp.MustCompile("`([^`]*)`")
	for _, line := range strings.Split(sec, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`-") {
			continue
		}
		var long string
		var names []string
		for _, m := range flagName.FindAllStringSubmatch(cells[1], -1) {
			names = append(names, strings.TrimLeft(m[1], "-"))
			if strings.HasPrefix(m[1], "--") {
				long = strings.TrimLeft(m[1], "-")
			}
		}
		def := ""
		if m := firstCode.FindStringSubmatch(cells[2]); m != nil && !strings.HasPrefix(m[1], "-") {
			def = m[1]
		}
		slices.Sort(names)
		readme[long] = row{strings.Join(names, ","), def}
	}
	var c Config
	fs := newFlagSet(&c, io.Discard)
	help := map[string]row{}
	aliases := map[string][]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if m := shortFor.FindStringSubmatch(f.Usage); m != nil {
			aliases[m[1]] = append(aliases[m[1]], f.Name)
		}
	})
	fs.VisitAll(func(f *flag.Flag) {
		if shortFor.MatchString(f.Usage) {
			return
		}
		names := append([]string{f.Name}, aliases[f.Name]...)
		slices.Sort(names)
		help[f.Name] = row{strings.Join(names, ","), f.DefValue}
	})
	for name, h := range help {
		r, ok := readme[name]
		switch {
		case !ok:
			t.Errorf("--%s is in --help but not in README's flag table", name)
		case r.names != h.names:
			t.Errorf("--%s: README names %s, --help %s", name, r.names, h.names)
		case !sameDefault(r.def, h.def):
			t.Errorf("--%s: README's default %q, --help's %q", name, r.def, h.def)
		}
	}
	for name := range readme {
		if _, ok := help[name]; !ok {
			t.Errorf("README's flag table has --%s, which --help does not know", name)
		}
	}
}

// sameDefault compares a default as README writes it with --help's: none
// (empty) stands for an empty or false default, and durations compare as
// durations (5m is 5m0s).
func sameDefault(readme, help string) bool {
	if readme == help || readme == "" && (help == "" || help == "false") {
		return true
	}
	a, err1 := time.ParseDuration(readme)
	b, err2 := time.ParseDuration(help)
	return err1 == nil && err2 == nil && a == b
}
