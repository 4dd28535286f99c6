package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// State is the administrative state of a service, as written in its flag
// file. The zero value is [Missing]: no flag file.
type State uint8

const (
	// Missing means there is no flag file: the service is out of rotation,
	// exactly as in the original http_status.
	Missing State = iota
	// Up means in rotation. An empty flag file, or one whose content is not
	// in the grammar, is Up (the original tool only looked at existence).
	Up
	// Drain means finish current sessions but take no new ones.
	Drain
	// Maint means administratively out of service for maintenance.
	Maint
	// Down means out of service (failed, stopped).
	Down
)

var stateNames = [...]string{Missing: "missing", Up: "up", Drain: "drain", Maint: "maint", Down: "down"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// HTTPCode is the status code /status answers for s. 200 only for Up; 404 for
// a missing flag (the original contract) and for Drain, so that HAProxy's
// "http-check disable-on-404" drains; 503 for Maint and Down.
func (s State) HTTPCode() int {
	switch s {
	case Up:
		return 200
	case Maint, Down:
		return 503
	default: // Missing, Drain
		return 404
	}
}

// ParseStateWord maps a state word of the flag-file grammar to a State.
func ParseStateWord(w string) (State, bool) {
	w = strings.ToLower(w)
	for _, sw := range stateWords {
		if sw.word == w {
			return sw.state, true
		}
	}
	return Missing, false
}

// stateWords are the state words of a flag file and their synonyms.
var stateWords = [...]struct {
	word  string
	state State
}{
	{"up", Up}, {"ready", Up}, {"active", Up},
	{"drain", Drain}, {"draining", Drain}, {"drained", Drain},
	{"maint", Maint}, {"maintenance", Maint},
	{"down", Down}, {"stopped", Down}, {"stop", Down}, {"fail", Down}, {"failed", Down},
	{"inactive", Down}, {"disabled", Down}, {"offline", Down},
}

// NoWeight is [Entry.Weight] when the flag file names no weight.
const NoWeight = -1

// MaxWeight is the largest weight percentage accepted (HAProxy caps a
// server's weight at 256).
const MaxWeight = 256

// MaxFlagSize is how much of a flag file is read. The grammar fits in a
// line; a longer first line is most likely an old status page (Up, as in
// the original tool). Content that goes on past it is parsed by what it
// shows and fails closed where the cut may hide a state word: see
// [ParseFlag].
const MaxFlagSize = 4096

// MaxReasonLen bounds the reason so it fits an HTTP header and an agent line.
const MaxReasonLen = 200

// Entry is one flag file as parsed. It is a value: copying it is safe.
type Entry struct {
	State   State
	Weight  int       // 0..MaxWeight percent, or NoWeight
	Reason  string    // free text, no control characters
	Expires time.Time // zero: never. At and after this instant the entry is plain Up.
	Since   time.Time // when the watcher first saw this state
	// ConnPort is the local port whose connections count for this service
	// (the conn=PORT word); 0: the port in the name (squid.80).
	ConnPort uint16
	// Invalid is set when the content was not in the grammar (it then
	// counts as Up). The watcher logs it once.
	Invalid string
}

// Effective is e as it stands at now: once an override has expired the
// service is plain Up, with no weight and no reason.
func (e Entry) Effective(now time.Time) Entry {
	if e.State != Missing && !e.Expires.IsZero() && !now.Before(e.Expires) {
		return Entry{State: Up, Weight: NoWeight, Since: e.Expires, ConnPort: e.ConnPort}
	}
	return e
}

// SameAs reports whether two entries say the same thing (ignoring Since).
func (e Entry) SameAs(o Entry) bool {
	return e.State == o.State && e.Weight == o.Weight && e.Reason == o.Reason &&
		e.Expires.Equal(o.Expires) && e.Invalid == o.Invalid && e.ConnPort == o.ConnPort
}

// AgentReply is the HAProxy agent-check reply for e, without the trailing
// newline.
//
// Only an agent reply can undo what an earlier agent reply set, and HAProxy
// keeps an administrative state (ready, drain, maint) apart from an
// operational one (up, down). So every reply names an administrative word,
// and every reply but maint an operational word too: the reply alone fixes
// the server's state, whatever was answered before.
//
//	up           up ready 100%   (or the flag's weight, "up ready 50%")
//	drain        up drain
//	maint        maint
//	down         down ready      ("ready" lifts an earlier maint)
//	no flag      down ready #no flag file
//
// A reason, when set, follows as " #reason".
func (e Entry) AgentReply() string {
	var b strings.Builder
	switch e.State {
	case Up:
		b.WriteString("up ready ")
		if e.Weight == NoWeight {
			b.WriteString("100%")
		} else {
			b.WriteString(strconv.Itoa(e.Weight))
			b.WriteByte('%')
		}
	case Drain:
		b.WriteString("up drain")
	case Maint:
		b.WriteString("maint")
	case Down:
		b.WriteString("down ready")
	default:
		b.WriteString("down ready")
		if e.Reason == "" {
			e.Reason = "no flag file"
		}
	}
	if e.Reason != "" {
		b.WriteString(" #")
		b.WriteString(e.Reason)
	}
	return b.String()
}

// Format renders e in the flag-file grammar; [ParseFlag] reads it back.
func (e Entry) Format() string {
	st := e.State
	if st == Missing {
		st = Up
	}
	parts := []string{st.String()}
	if e.Weight != NoWeight {
		parts = append(parts, strconv.Itoa(e.Weight)+"%")
	}
	if !e.Expires.IsZero() {
		parts = append(parts, "until="+e.Expires.UTC().Format(time.RFC3339Nano))
	}
	if e.ConnPort != 0 {
		parts = append(parts, "conn="+strconv.Itoa(int(e.ConnPort)))
	}
	if e.Reason != "" {
		parts = append(parts, "# "+e.Reason)
	}
	return strings.Join(parts, " ") + "\n"
}

// ErrGrammar marks content that is not in the flag-file grammar.
var ErrGrammar = errors.New("not in the flag-file grammar")

// ParseFlag parses a flag file's content.
//
// # Grammar
//
// The first line holds words separated by blanks:
//
//	[STATE] [WEIGHT%] [until=TIME] [conn=PORT] [# REASON...]
//
// STATE is up|ready, drain, maint, or down|stopped|fail; WEIGHT is 0..256
// followed by %; TIME is RFC 3339 (2026-11-23T10:00:00Z) or Unix seconds;
// PORT (1..65535) is where the service's connections arrive, when that is
// not the port in its name (it changes no answer: an unreadable one is
// ignored); everything after # is the reason. Lines after the first, and lines starting
// with # before any word, are ignored, except that a later line starting
// with an out-of-rotation word (appended: echo drain >> FILE) takes an up
// flag out, flagged. Empty content is Up. A UTF-8
// byte-order mark at the start is skipped; content that starts with a
// UTF-16 one is decoded first.
//
// # Content that is not quite in the grammar
//
// Flags are written by hand, and what decides traffic must fail closed. So
// each part is read on its own: a part that cannot be read is ignored, and
// the returned error (also in [Entry.Invalid]) says which; the Entry is
// usable either way. In particular an out-of-rotation word (drain, maint,
// down and their synonyms) anywhere before the reason is honoured, whatever
// surrounds it: "drain 300%", "until=2026-11-23T10:00 maint", "drain\x00",
// "drain # caf\xe9" are all out of rotation. An expiry that cannot be read
// is ignored, so such an override stays until the file changes. When two
// state words disagree, the first out-of-rotation one wins.
//
// Content with no state word at all (an old status.html page, say) is Up,
// as in the original tool, and flagged.
//
// # Content longer than MaxFlagSize
//
// Only the first MaxFlagSize bytes are read (pass more to say the file
// goes on). When no line starts within them (a long comment block), the
// first line is unknown: Down, flagged. When the first line is cut, its
// last word may be cut too ("drai"): it is ignored, unless it could be the
// start of an out-of-rotation word, which makes the entry Down.
func ParseFlag(content []byte) (Entry, error) {
	e, _, err := ParseFlagStated(content)
	return e, err
}

// ParseFlagStated is [ParseFlag], also reporting whether the content holds
// a state word (up or not). Content read as up without one (empty, or a
// word cut short by a writer that has not finished: "dr" of drain) may be
// a writer's passing state; the watcher holds such a reading back for a
// moment.
func ParseFlagStated(content []byte) (e Entry, stated bool, err error) {
	e = Entry{State: Up, Weight: NoWeight}
	line, ended, rest := firstLine(flagText(content))
	var problem error
	note := func(err error) {
		if problem == nil {
			problem = err
		}
	}
	cutOutOfRotation := false
	if !ended {
		if line == "" {
			e.State = Down
			e.Invalid = fmt.Sprintf("no line starts in the first %d bytes: counted as down", MaxFlagSize)
			return e, false, fmt.Errorf("%s: %w", e.Invalid, ErrGrammar)
		}
		note(fmt.Errorf("first line longer than %d bytes: only its start was read: %w", MaxFlagSize, ErrGrammar))
		if !strings.Contains(line, "#") { // a cut in the reason cuts no word
			start := 0 // of the last word
			if i := strings.LastIndexFunc(line, isSeparator); i >= 0 {
				_, n := utf8.DecodeRuneInString(line[i:])
				start = i + n
			}
			// A whole out-of-rotation word stays: whatever it was cut
			// from ("drain" of "drained") means the same state.
			if st, ok := ParseStateWord(looseWord(line[start:])); !ok || st == Up {
				cutOutOfRotation = mayStartOutOfRotationWord(line[start:])
				line = line[:start]
			}
		}
	}
	if line == "" && !cutOutOfRotation {
		if problem != nil {
			e.Invalid = problem.Error()
		}
		return e, false, problem
	}
	reason, hasReason := "", false
	if i := strings.IndexByte(line, '#'); i >= 0 {
		reason, hasReason = line[i+1:], true
		line = line[:i]
	}
	if hasOddSeparator(line) {
		note(fmt.Errorf("control or invisible character before the reason: %w", ErrGrammar))
	}
	sawState, sawWeight, sawExpiry, sawOther := false, false, false, false
	for i, w := range fields(line) {
		st, ok := ParseStateWord(w)
		if !ok {
			// "drain." or "“down”" by hand: the word is still the word.
			if t := looseWord(w); t != w {
				if st, ok = ParseStateWord(t); ok {
					note(fmt.Errorf("punctuation or wide letters in state word %q: %w", Clip(w, 40), ErrGrammar))
				}
			}
		}
		if !ok && i == 0 {
			// `printf down | dd of=FILE conv=notrunc` over "drain\n"
			// leaves "downn": the word written, then the rest of the
			// longer one it was written over.
			if st, ok = outOfRotationPrefix(w); ok {
				note(fmt.Errorf("first word %q starts with an out-of-rotation word (written over a longer one without truncating?): counted as %s: %w", Clip(w, 40), st, ErrGrammar))
			}
		}
		if ok {
			switch {
			case !sawState:
				if sawWeight || sawExpiry || sawOther {
					note(fmt.Errorf("state word %q after other words: %w", Clip(w, 40), ErrGrammar))
				}
				e.State, sawState = st, true
			default:
				note(fmt.Errorf("second state word %q: %w", Clip(w, 40), ErrGrammar))
				if e.State == Up && st != Up {
					e.State = st // fail closed: out of rotation wins
				}
			}
			continue
		}
		switch {
		case strings.HasSuffix(w, "%"):
			n, err := strconv.Atoi(w[:len(w)-1])
			switch {
			case err != nil || n < 0 || n > MaxWeight:
				note(fmt.Errorf("weight %q: want 0%%..%d%%: %w", Clip(w, 40), MaxWeight, ErrGrammar))
			case sawWeight:
				note(fmt.Errorf("second weight %q: %w", Clip(w, 40), ErrGrammar))
			default:
				e.Weight, sawWeight = n, true
			}
		case hasPrefixFold(w, "until=") || hasPrefixFold(w, "expires="):
			t, err := parseTime(w[strings.IndexByte(w, '=')+1:])
			switch {
			case err != nil:
				note(fmt.Errorf("expiry %q: %w", Clip(w, 60), err))
			case sawExpiry:
				note(fmt.Errorf("second expiry %q: %w", Clip(w, 60), ErrGrammar))
			default:
				e.Expires, sawExpiry = t, true
			}
		case hasPrefixFold(w, "conn="):
			p, err := ParsePort(w[len("conn="):])
			switch {
			case err != nil:
				note(fmt.Errorf("%q: %w", Clip(w, 40), err))
			case e.ConnPort != 0:
				note(fmt.Errorf("second conn port %q: %w", Clip(w, 40), ErrGrammar))
			default:
				e.ConnPort = p
			}
		default:
			sawOther = true
			note(fmt.Errorf("unexpected word %q: %w", Clip(w, 40), ErrGrammar))
		}
	}
	if cutOutOfRotation && (e.State == Up || !sawState) {
		e.State = Down
		note(fmt.Errorf("first line cut at %d bytes in a word that may be a state word: counted as down: %w", MaxFlagSize, ErrGrammar))
	}
	if e.State == Up {
		// `echo drain >> FILE` over an up flag: the operator's last word
		// is on a later line, and a line that is not the first cannot be
		// told from one appended. Fail closed, as for two words on one line.
		if st, w := laterOutOfRotation(rest); st != Up {
			e.State, e.Expires, sawState = st, time.Time{}, true
			note(fmt.Errorf("a later line starts with %q (appended with >>?), which wins over the first line: %w", Clip(w, 40), ErrGrammar))
		}
	}
	if hasReason {
		r, err := cleanReason(reason)
		if err != nil {
			note(err)
		}
		e.Reason = r
	}
	if problem != nil {
		e.Invalid = problem.Error()
		return e, sawState, problem
	}
	return e, sawState, nil
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// flagText is the text of a flag file's content: its first MaxFlagSize
// bytes (cut reports that there was more), without a UTF-8 byte-order mark,
// and decoded when it starts with a UTF-16 one: Windows tools write text so
// (PowerShell 5's `>`, Notepad's "Unicode"), and "drain" written so must
// read as drain, not as content with no state word (up).
func flagText(content []byte) (text []byte, cut bool) {
	cut = len(content) > MaxFlagSize
	if cut {
		content = content[:MaxFlagSize]
	}
	switch {
	case bytes.HasPrefix(content, utf8BOM):
		return content[len(utf8BOM):], cut
	case len(content) >= 2 && content[0] == 0xff && content[1] == 0xfe:
		return decodeUTF16(content[2:], binary.LittleEndian), cut
	case len(content) >= 2 && content[0] == 0xfe && content[1] == 0xff:
		return decodeUTF16(content[2:], binary.BigEndian), cut
	}
	return content, cut
}

// decodeUTF16 decodes b (a trailing odd byte is dropped; unpaired
// surrogates become U+FFFD) to UTF-8.
func decodeUTF16(b []byte, order binary.ByteOrder) []byte {
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = order.Uint16(b[2*i:])
	}
	out := make([]byte, 0, len(units))
	for _, r := range utf16.Decode(units) {
		out = utf8.AppendRune(out, r)
	}
	return out
}

// punct is what a hand-written state word may be wrapped in.
// isSeparator reports whether r separates words: blanks, every other
// control character (a NUL after the state word, say), and what an editor,
// a word processor or a copy from a web page puts where a blank belongs and
// looks like one or like nothing: Unicode spaces (no-break, ideographic),
// invisible format characters (zero-width space, word joiner) and bytes
// that are not UTF-8 (a Latin-1 no-break space is 0xA0).
func isSeparator(r rune) bool {
	return r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}

// fields splits s at separators: what is between them are the words.
func fields(s string) []string {
	return strings.FieldsFunc(s, isSeparator)
}

// hasOddSeparator reports whether s has a separator other than a blank or
// a tab.
func hasOddSeparator(s string) bool {
	for _, r := range s {
		if r != ' ' && r != '\t' && isSeparator(r) {
			return true
		}
	}
	return false
}

// looseWord is w as a hand might have meant it: fullwidth letters (an input
// method left on) folded to ASCII, and punctuation, quotes (“ ” « »),
// dashes and symbols around it dropped.
func looseWord(w string) string {
	w = strings.Map(func(r rune) rune {
		if r >= 0xff01 && r <= 0xff5e { // fullwidth forms of ASCII '!'..'~'
			return r - 0xfee0
		}
		return r
	}, w)
	return strings.TrimFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// ParsePort parses a TCP port, 1..65535, in decimal, without a leading
// zero.
func ParsePort(s string) (uint16, error) {
	if p, ok := PortNumber(s); ok && s[0] != '0' {
		return p, nil
	}
	return 0, fmt.Errorf("port %q: want 1..65535: %w", Clip(s, 20), ErrGrammar)
}

// PortNumber is s as a port number from 1 to 65535 in plain decimal: one to
// five digits, leading zeros allowed ("080" is 80). ok is false otherwise.
// It does not allocate.
func PortNumber(s string) (port uint16, ok bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	if n < 1 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// firstLine returns the first line that is neither blank nor a comment,
// trimmed, within the first MaxFlagSize bytes of b. ended is false when b
// goes on past them and that line (or, with none, the next) is cut there.
// rest is what follows that line.
func firstLine(b []byte, cut bool) (line string, ended bool, rest []byte) {
	for len(b) > 0 {
		var l []byte
		terminated := true
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			l, b, terminated = b, nil, false
		}
		l = bytes.TrimSpace(l)
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		return string(l), terminated || !cut, b
	}
	return "", !cut, nil
}

// laterOutOfRotation finds the first of lines that starts with an
// out-of-rotation word, and returns its state and that word; Up when none
// does.
func laterOutOfRotation(lines []byte) (State, string) {
	for len(lines) > 0 {
		var l []byte
		if i := bytes.IndexByte(lines, '\n'); i >= 0 {
			l, lines = lines[:i], lines[i+1:]
		} else {
			l, lines = lines, nil
		}
		f := fields(string(l))
		if len(f) == 0 || f[0][0] == '#' {
			continue
		}
		// A word ParseStateWord takes as it is, looseWord leaves as it is.
		if st, ok := ParseStateWord(looseWord(f[0])); ok && st != Up {
			return st, f[0]
		}
	}
	return Up, ""
}

// mayStartOutOfRotationWord reports whether w, the cut-off end of a line,
// could be the start of drain, maint, down or one of their synonyms.
func mayStartOutOfRotationWord(w string) bool {
	w = strings.ToLower(looseWord(w))
	if w == "" {
		return false
	}
	for _, sw := range stateWords {
		if sw.state != Up && strings.HasPrefix(sw.word, w) {
			return true
		}
	}
	return false
}

// outOfRotationPrefix reports the state of an out-of-rotation word that w
// is made of, written over a longer state word without truncating: the
// word, then the rest of the old one ("downn": down over drain; "downtenance":
// down over maintenance). Only that shape counts: a word that merely starts
// with one ("download", "downtime", "failover", "drainage") is not one.
func outOfRotationPrefix(w string) (State, bool) {
	w = strings.ToLower(looseWord(w))
	best, st := 0, Up
	for _, sw := range stateWords {
		if sw.state == Up || len(sw.word) <= best || !strings.HasPrefix(w, sw.word) {
			continue
		}
		rest := w[len(sw.word):]
		for _, old := range stateWords {
			if len(old.word) == len(w) && old.word[len(sw.word):] == rest {
				best, st = len(sw.word), sw.state
				break
			}
		}
	}
	return st, best > 0
}

func parseTime(s string) (time.Time, error) {
	var t time.Time
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		t = time.Unix(n, 0)
	} else if t, err = time.Parse(time.RFC3339, s); err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 or Unix seconds: %w", ErrGrammar)
	}
	// Bounded so that [Entry.Format] can write it back in RFC 3339, and so
	// that no expiry is the zero Time (which means "never").
	if y := t.UTC().Year(); y < 1970 || y > 9999 {
		return time.Time{}, fmt.Errorf("year %d: want 1970..9999: %w", y, ErrGrammar)
	}
	return t, nil
}

// cleanReason makes a reason safe for a header and an agent line: printable
// UTF-8, bounded. What is not (a tab, a Latin-1 byte) is replaced, and the
// error says so; the reason is usable either way.
func cleanReason(r string) (string, error) {
	var err error
	if !utf8.ValidString(r) {
		r = strings.ToValidUTF8(r, "\ufffd")
		err = fmt.Errorf("reason is not UTF-8: %w", ErrGrammar)
	}
	if strings.ContainsFunc(r, isControl) {
		r = strings.Map(func(c rune) rune {
			if isControl(c) {
				return ' '
			}
			return c
		}, r)
		if err == nil {
			err = fmt.Errorf("reason has a control character: %w", ErrGrammar)
		}
	}
	// Trimmed again after clipping: the line is trimmed when read back.
	return strings.TrimSpace(Clip(strings.TrimSpace(r), MaxReasonLen)), err
}

func isControl(c rune) bool { return c < 0x20 || c == 0x7f }

// Clip cuts s to at most n bytes without splitting a UTF-8 sequence.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
