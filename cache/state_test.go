package cache

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

func TestParseFlag(t *testing.T) {
	until := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	long := strings.Repeat("r", MaxReasonLen+50)
	tests := []struct {
		name    string
		in      string
		want    Entry
		invalid bool
	}{
		{"empty", "", Entry{State: Up, Weight: NoWeight}, false},
		{"blank lines", "\n  \n\t\n", Entry{State: Up, Weight: NoWeight}, false},
		{"up", "up\n", Entry{State: Up, Weight: NoWeight}, false},
		{"ready", "READY", Entry{State: Up, Weight: NoWeight}, false},
		{"active", "active", Entry{State: Up, Weight: NoWeight}, false},
		{"drain", "drain", Entry{State: Drain, Weight: NoWeight}, false},
		{"draining", "Draining", Entry{State: Drain, Weight: NoWeight}, false},
		{"maint", "maint", Entry{State: Maint, Weight: NoWeight}, false},
		{"maintenance", "maintenance", Entry{State: Maint, Weight: NoWeight}, false},
		{"down", "down", Entry{State: Down, Weight: NoWeight}, false},
		{"stopped", "stopped", Entry{State: Down, Weight: NoWeight}, false},
		{"fail", "fail", Entry{State: Down, Weight: NoWeight}, false},
		{"inactive", "inactive", Entry{State: Down, Weight: NoWeight}, false},
		{"weight only", "50%", Entry{State: Up, Weight: 50}, false},
		{"up weight", "up 0%", Entry{State: Up, Weight: 0}, false},
		{"max weight", "up 256%", Entry{State: Up, Weight: 256}, false},
		{"drain weight reason", "drain 25% # deploy 1234",
			Entry{State: Drain, Weight: 25, Reason: "deploy 1234"}, false},
		{"reason without space", "down#disk full", Entry{State: Down, Weight: NoWeight, Reason: "disk full"}, false},
		{"reason with hashes", "down # a # b", Entry{State: Down, Weight: NoWeight, Reason: "a # b"}, false},
		{"until rfc3339", "maint until=2026-11-23T10:00:00Z # kernel",
			Entry{State: Maint, Weight: NoWeight, Expires: until, Reason: "kernel"}, false},
		{"until offset", "maint until=2026-11-23T11:00:00+01:00",
			Entry{State: Maint, Weight: NoWeight, Expires: until}, false},
		{"until unix", "drain until=" + "1795428000", Entry{State: Drain, Weight: NoWeight, Expires: time.Unix(1795428000, 0)}, false},
		{"expires alias", "drain expires=2026-11-23T10:00:00Z", Entry{State: Drain, Weight: NoWeight, Expires: until}, false},
		{"until fraction", "drain until=2026-11-23T10:00:00.25Z",
			Entry{State: Drain, Weight: NoWeight, Expires: until.Add(250 * time.Millisecond)}, false},
		{"comment first", "# written by deploy\n\ndrain\nignored line", Entry{State: Drain, Weight: NoWeight}, false},
		{"crlf", "down 10%\r\n", Entry{State: Down, Weight: 10}, false},
		{"reason clipped", "down # " + long, Entry{State: Down, Weight: NoWeight, Reason: long[:MaxReasonLen]}, false},
		{"reason clipped then trimmed", "down # " + strings.Repeat("x", MaxReasonLen-1) + " y",
			Entry{State: Down, Weight: NoWeight, Reason: strings.Repeat("x", MaxReasonLen-1)}, false},

		// Outside the grammar with no state word: Up, flagged invalid.
		{"html page", "<html><body>OK</body></html>\n", Entry{State: Up, Weight: NoWeight}, true},
		{"weight too big", "up 257%", Entry{State: Up, Weight: NoWeight}, true},
		{"negative weight", "up -5%", Entry{State: Up, Weight: NoWeight}, true},
		{"weight not a number", "up x%", Entry{State: Up, Weight: NoWeight}, true},
		{"two weights", "up 5% 6%", Entry{State: Up, Weight: 5}, true},
		{"nul only", "\x00", Entry{State: Up, Weight: NoWeight}, true},

		// Fail closed: an out-of-rotation word is honoured whatever
		// surrounds it; what cannot be read is ignored and flagged.
		{"state after weight", "50% drain", Entry{State: Drain, Weight: 50}, true},
		{"word order until maint", "until=2026-11-23T10:00:00Z maint", Entry{State: Maint, Weight: NoWeight, Expires: until}, true},
		{"two states", "drain down", Entry{State: Drain, Weight: NoWeight}, true},
		{"up then down", "up down", Entry{State: Down, Weight: NoWeight}, true},
		{"unknown text then drain", "please drain", Entry{State: Drain, Weight: NoWeight}, true},
		{"drain bad weight", "drain 300%", Entry{State: Drain, Weight: NoWeight}, true},
		{"bad time", "drain until=tomorrow", Entry{State: Drain, Weight: NoWeight}, true},
		{"until without zone", "drain until=2026-11-23T10:00:00", Entry{State: Drain, Weight: NoWeight}, true},
		{"month 13", "maint until=2026-13-01T10:00:00Z", Entry{State: Maint, Weight: NoWeight}, true},
		{"year too far", "drain until=99999999999999", Entry{State: Drain, Weight: NoWeight}, true},
		{"before 1970", "drain until=1969-12-31T23:00:00Z", Entry{State: Drain, Weight: NoWeight}, true},
		{"control char in reason", "down # a\x01b", Entry{State: Down, Weight: NoWeight, Reason: "a b"}, true},
		{"tab in reason", "drain # a\tb", Entry{State: Drain, Weight: NoWeight, Reason: "a b"}, true},
		{"latin-1 in reason", "drain # caf\xe9", Entry{State: Drain, Weight: NoWeight, Reason: "caf\ufffd"}, true},
		{"bad utf8 reason", "down # \xff", Entry{State: Down, Weight: NoWeight, Reason: "\ufffd"}, true},
		{"nul after word", "drain\x00", Entry{State: Drain, Weight: NoWeight}, true},
		{"nul-padded file", "maint\x00\x00\x00\x00", Entry{State: Maint, Weight: NoWeight}, true},
		{"punctuation", "Drain.", Entry{State: Drain, Weight: NoWeight}, true},
		{"quoted", "'maint'", Entry{State: Maint, Weight: NoWeight}, true},
		{"upper case until", "drain UNTIL=2026-11-23T10:00:00Z", Entry{State: Drain, Weight: NoWeight, Expires: until}, false},
		// What an editor, a word processor or a copy from a web page
		// puts around a word (all answered 200 before).
		{"no-break space", "drain\u00a0# deploy", Entry{State: Drain, Weight: NoWeight, Reason: "deploy"}, true},
		{"latin-1 no-break space", "drain\xa0# deploy", Entry{State: Drain, Weight: NoWeight, Reason: "deploy"}, true},
		{"zero-width space after", "drain\u200b", Entry{State: Drain, Weight: NoWeight}, true},
		{"zero-width space before", "\u200bmaint", Entry{State: Maint, Weight: NoWeight}, true},
		{"ideographic space", "drain\u3000x", Entry{State: Drain, Weight: NoWeight}, true},
		{"word joiner", "down\u2060", Entry{State: Down, Weight: NoWeight}, true},
		{"smart quotes", "\u201cdrain\u201d", Entry{State: Drain, Weight: NoWeight}, true},
		{"guillemets", "\u00abmaint\u00bb", Entry{State: Maint, Weight: NoWeight}, true},
		{"fullwidth", "\uff24\uff52\uff41\uff49\uff4e", Entry{State: Drain, Weight: NoWeight}, true},
		{"dash", "-down-", Entry{State: Down, Weight: NoWeight}, true},

		// A byte-order mark from an editor is not a problem.
		{"bom", "\xef\xbb\xbfdrain # x", Entry{State: Drain, Weight: NoWeight, Reason: "x"}, false},
		{"bom then comment", "\xef\xbb\xbf# note\nmaint", Entry{State: Maint, Weight: NoWeight}, false},
		// Nor is UTF-16 with its mark, as Windows tools write text
		// (PowerShell 5's `echo drain > FILE`, Notepad's "Unicode").
		{"utf-16le", utf16Text(binary.LittleEndian, "drain # deploy\r\n"), Entry{State: Drain, Weight: NoWeight, Reason: "deploy"}, false},
		{"utf-16be", utf16Text(binary.BigEndian, "# note\nmaint 50%\n"), Entry{State: Maint, Weight: 50}, false},
		{"utf-16le odd byte", utf16Text(binary.LittleEndian, "down") + "\x0a\x00\x41", Entry{State: Down, Weight: NoWeight}, false},
		{"utf-16le unpaired surrogate", utf16Text(binary.LittleEndian, "drain # a") + "\x00\xd8", Entry{State: Drain, Weight: NoWeight, Reason: "a\ufffd"}, false},
		{"synonyms", "drained", Entry{State: Drain, Weight: NoWeight}, false},
		{"disabled", "disabled", Entry{State: Down, Weight: NoWeight}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFlag([]byte(tt.in))
			if tt.invalid {
				if !errors.Is(err, ErrGrammar) {
					t.Fatalf("ParseFlag(%q) error = %v, want ErrGrammar", tt.in, err)
				}
				if got.Invalid == "" {
					t.Errorf("ParseFlag(%q).Invalid is empty", tt.in)
				}
				got.Invalid = ""
			} else if err != nil {
				t.Fatalf("ParseFlag(%q) error = %v", tt.in, err)
			}
			if !got.SameAs(tt.want) {
				t.Errorf("ParseFlag(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseFlagLongContent(t *testing.T) {
	// Only MaxFlagSize bytes count: a long first line is not read whole.
	e, err := ParseFlag([]byte("drain " + strings.Repeat("x", 2*MaxFlagSize)))
	if err == nil || e.State != Drain {
		t.Fatalf("long content = %+v, %v; want Drain (fail closed) and an error", e, err)
	}
}

func TestAgentReply(t *testing.T) {
	tests := []struct {
		e    Entry
		want string
	}{
		{Entry{State: Up, Weight: NoWeight}, "up ready 100%"},
		{Entry{State: Up, Weight: 50}, "up ready 50%"},
		{Entry{State: Up, Weight: 0}, "up ready 0%"},
		{Entry{State: Up, Weight: NoWeight, Reason: "canary"}, "up ready 100% #canary"},
		{Entry{State: Drain, Weight: NoWeight}, "up drain"},
		{Entry{State: Drain, Weight: 30, Reason: "deploy 1234"}, "up drain #deploy 1234"},
		{Entry{State: Maint, Weight: NoWeight}, "maint"},
		{Entry{State: Maint, Weight: NoWeight, Reason: "kernel"}, "maint #kernel"},
		{Entry{State: Down, Weight: NoWeight}, "down ready"},
		{Entry{State: Down, Weight: NoWeight, Reason: "deploy 1234"}, "down ready #deploy 1234"},
		{Entry{State: Missing, Weight: NoWeight}, "down ready #no flag file"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.e.AgentReply(); got != tt.want {
				t.Errorf("%+v.AgentReply() = %q, want %q", tt.e, got, tt.want)
			}
		})
	}
}

func TestEffective(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	e := Entry{State: Drain, Weight: 20, Reason: "deploy", Expires: at}
	if got := e.Effective(at.Add(-time.Nanosecond)); !got.SameAs(e) {
		t.Errorf("before expiry: %+v, want unchanged", got)
	}
	for _, now := range []time.Time{at, at.Add(time.Hour)} {
		got := e.Effective(now)
		if got.State != Up || got.Weight != NoWeight || got.Reason != "" || !got.Since.Equal(at) {
			t.Errorf("at %v: %+v, want plain Up since the expiry", now, got)
		}
	}
	missing := Entry{State: Missing, Weight: NoWeight, Expires: at}
	if got := missing.Effective(at.Add(time.Hour)); got.State != Missing {
		t.Errorf("a missing flag never expires into Up: got %v", got.State)
	}
}

func TestFormatRoundTrip(t *testing.T) {
	until := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		e    Entry
		want string
	}{
		{Entry{State: Up, Weight: NoWeight}, "up\n"},
		{Entry{State: Missing, Weight: NoWeight}, "up\n"},
		{Entry{State: Up, Weight: 50}, "up 50%\n"},
		{Entry{State: Drain, Weight: NoWeight, Reason: "deploy 1234", Expires: until},
			"drain until=2026-11-23T10:00:00Z # deploy 1234\n"},
		{Entry{State: Maint, Weight: NoWeight, Expires: until.Add(1500 * time.Millisecond)},
			"maint until=2026-11-23T10:00:01.5Z\n"},
		{Entry{State: Down, Weight: 0, Reason: "x"}, "down 0% # x\n"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.want), func(t *testing.T) {
			got := tt.e.Format()
			if got != tt.want {
				t.Fatalf("Format() = %q, want %q", got, tt.want)
			}
			back, err := ParseFlag([]byte(got))
			if err != nil {
				t.Fatalf("ParseFlag(%q): %v", got, err)
			}
			want := tt.e
			if want.State == Missing {
				want.State = Up
			}
			if !back.SameAs(want) {
				t.Errorf("ParseFlag(Format()) = %+v, want %+v", back, want)
			}
		})
	}
}

func TestHTTPCode(t *testing.T) {
	want := map[State]int{Up: 200, Drain: 404, Missing: 404, Maint: 503, Down: 503}
	for s, code := range want {
		if got := s.HTTPCode(); got != code {
			t.Errorf("%v.HTTPCode() = %d, want %d", s, got, code)
		}
	}
}

// FuzzParseFlag checks properties: parsing never panics; a parse error
// always yields a usable Up entry; a parsed entry formats to content that
// parses back to the same entry; the agent reply is one line HAProxy reads
// as intended.
func FuzzParseFlag(f *testing.F) {
	for _, s := range []string{
		"", "up", "drain 50% # deploy", "maint until=2026-11-23T10:00:00Z # k",
		"down until=1795428000", "<html>", "up 256%", "# c\nfail#x", "drain\r\n",
		"up 5% until=2026-11-23T10:00:00.123+05:00 #  spaced reason  ",
		"down # \u00a0x\u00a0", "50%", "drain\x00", "\xef\xbb\xbfmaint", "until=1795428000 maint",
		"drain # caf\xe9", "drain 300%", "x\tdown", "'drain'",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		e, err := ParseFlag(content)
		if err != nil && (e.Invalid == "" || !errors.Is(err, ErrGrammar)) {
			t.Fatalf("ParseFlag(%q) = %+v, %v: want Invalid set and ErrGrammar", content, e, err)
		}
		if err == nil && e.Invalid != "" {
			t.Fatalf("ParseFlag(%q): Invalid %q without an error", content, e.Invalid)
		}
		if e.State == Missing {
			t.Fatalf("ParseFlag(%q) gave Missing", content)
		}
		// Fail closed: an out-of-rotation word before the reason is never
		// read as up, whatever else the line holds.
		if out := outWord(content); out && e.State == Up {
			t.Fatalf("ParseFlag(%q) = up, but the line names an out-of-rotation state", content)
		}
		if e.Weight != NoWeight && (e.Weight < 0 || e.Weight > MaxWeight) {
			t.Fatalf("weight %d out of range", e.Weight)
		}
		if len(e.Reason) > MaxReasonLen || !utf8.ValidString(e.Reason) || strings.ContainsFunc(e.Reason, isControl) {
			t.Fatalf("reason %q too long, not UTF-8 or with a control character", e.Reason)
		}
		e.Invalid = ""
		text := e.Format()
		back, err := ParseFlag([]byte(text))
		if err != nil {
			t.Fatalf("ParseFlag(Format()) of %q: %q: %v", content, text, err)
		}
		if !back.SameAs(e) {
			t.Fatalf("round trip of %q via %q: %+v != %+v", content, text, back, e)
		}
		reply := e.AgentReply()
		if strings.ContainsAny(reply, "\r\n\x00") {
			t.Fatalf("agent reply %q has a line break or NUL", reply)
		}
		words := reply
		if i := strings.IndexByte(reply, '#'); i >= 0 {
			words = reply[:i]
		}
		if e.Reason == "" && strings.Contains(reply, "#") {
			t.Fatalf("agent reply %q has a # without a reason", reply)
		}
		if !strings.Contains(words, "ready") && !strings.Contains(words, "drain") && !strings.Contains(words, "maint") {
			t.Fatalf("agent reply %q names no administrative state", reply)
		}
	})
}

// outWord is the fuzz oracle for failing closed: whether the first line of
// content (as ParseFlag picks it) names drain, maint or down before any '#'.
func outWord(content []byte) bool {
	line, _, _ := firstLine(flagText(content))
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	for _, w := range strings.FieldsFunc(line, isSeparator) {
		if st, ok := ParseStateWord(looseWord(w)); ok && st != Up {
			return true
		}
	}
	return false
}

// TestParseFlagCut: content past MaxFlagSize fails closed where the cut may
// hide a state word.
func TestParseFlagCut(t *testing.T) {
	// at puts line after a comment line so that k of its bytes are read.
	at := func(k int, line string) string {
		return strings.Repeat("#", MaxFlagSize-k-1) + "\n" + line + strings.Repeat("z", 10)
	}
	for _, tc := range []struct {
		name, in string
		want     State
	}{
		{"no line within the limit", at(0, "drain\n"), Down},
		{"cut to d", at(3, "x drain\n"), Down},
		{"cut to 'stop", at(7, "x 'stopped\n"), Down},
		{"whole maint at the cut", at(7, "x maintenance\n"), Maint},
		{"up, cut in an unknown word", at(8, "up xyzzyzzz\n"), Up},
		{"up, cut in a weight", at(5, "up 50%\n"), Up},
		{"up, cut in the reason", at(8, "up # drain\n"), Up},
		{"short content is not cut", "drai", Up},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseFlag([]byte(tc.in))
			if e.State != tc.want || err == nil {
				t.Fatalf("ParseFlag(%d bytes) = %v, %v; want %v and an error", len(tc.in), e.State, err, tc.want)
			}
		})
	}
}

// utf16Text is s encoded as UTF-16 with a byte-order mark.
func utf16Text(order binary.AppendByteOrder, s string) string {
	b := order.AppendUint16(nil, 0xfeff)
	for _, u := range utf16.Encode([]rune(s)) {
		b = order.AppendUint16(b, u)
	}
	return string(b)
}

// TestParseFlagStated: whether content holds a state word is what tells the
// watcher that content read as up may be half-written.
func TestParseFlagStated(t *testing.T) {
	for content, want := range map[string]bool{
		"":                    false,
		"# only a comment\n":  false,
		"dr":                  false,
		"mown\n":              false,
		"50% # reason":        false,
		"<html><body>ok":      false,
		"up\n":                true,
		"ready 50%":           true,
		"drain until=17":      true,
		"x drain":             true,
		"“drain”":             true,
		"down # half-written": true,
	} {
		if _, got, _ := ParseFlagStated([]byte(content)); got != want {
			t.Errorf("ParseFlagStated(%q) stated %v, want %v", content, got, want)
		}
	}
}

// TestLaterLineOutOfRotation: `echo drain >> FILE` over an up flag puts the
// operator's word on the second line. It wins, as the first
// out-of-rotation word on one line does; other later lines stay ignored.
func TestLaterLineOutOfRotation(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    State
		invalid bool
	}{
		{"up\ndrain\n", Drain, true},
		{"up 50%\n# note\n\n  maint # window\n", Maint, true},
		{"up until=2099-01-01T00:00:00Z\nDOWN.\n", Down, true},
		{"<html>\nDown for maintenance\n", Down, true},
		{"up\n# drain\n", Up, false},
		{"up\nthe service may drain\n", Up, false},
		{"drain\nup\n", Drain, false},
		{"down\ndrain\n", Down, false},
		{"up\nup\n", Up, false},
	} {
		e, err := ParseFlag([]byte(tc.content))
		if e.State != tc.want || (err != nil) != tc.invalid || !e.Expires.IsZero() {
			t.Errorf("ParseFlag(%q) = %v (expires %v), %v; want %v, invalid %v", tc.content, e.State, e.Expires, err, tc.want, tc.invalid)
		}
	}
}

// TestOutOfRotationPrefix: a shorter word written over a longer one without
// truncating (dd conv=notrunc) leaves "downn"; the first word counts as
// the out-of-rotation word it starts with. Up words and later words do not.
func TestOutOfRotationPrefix(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    State
		invalid bool
	}{
		{"downn\n", Down, true},              // down over drain
		{"downt # deploy\n", Down, true},     // down over maint
		{"drainenance\n", Drain, true},       // drain over maintenance
		{"mainting 50%", Maint, true},        // maint over draining
		{"Stopn", Down, true},                // stop over drain
		{"downtenance # deploy", Down, true}, // down over maintenance
		{"drained\n", Drain, false},
		{"maintenance", Maint, false},
		{"upain\n", Up, true},
		{"x downn", Up, true},
		// Words that merely start with one are words of their own.
		{"download", Up, true},
		{"downtime planned friday", Up, true},
		{"failover-ready", Up, true},
		{"drainage", Up, true},
		{"maintained by ops", Up, true},
		{"stopwatch", Up, true},
	} {
		e, err := ParseFlag([]byte(tc.content))
		if e.State != tc.want || (err != nil) != tc.invalid {
			t.Errorf("ParseFlag(%q) = %v, %v; want %v, invalid %v", tc.content, e.State, err, tc.want, tc.invalid)
		}
	}
}
