package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/rs/zerolog"
)

// --log-format journal (and auto when stderr is the journal stream, i.e.
// under systemd): each zerolog line goes to journald as one entry with the
// message as MESSAGE, the level as PRIORITY and every other field as an
// upper-case journal field (component=watcher becomes COMPONENT=watcher), so
// `journalctl -u http_status COMPONENT=watcher` works.

// stderrIsJournal reports whether stderr is connected to journald
// (JOURNAL_STREAM matches) and journald's socket is there.
func stderrIsJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok && journal.Enabled()
}

type journalWriter struct {
	fallback io.Writer // when journald refuses an entry
}

func newJournalWriter(fallback io.Writer) zerolog.LevelWriter {
	return journalWriter{fallback: fallback}
}

func (j journalWriter) Write(p []byte) (int, error) {
	return j.WriteLevel(zerolog.NoLevel, p)
}

func (j journalWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	msg, vars := journalFields(p)
	if err := journal.Send(msg, journalPriority(l), vars); err != nil {
		return j.fallback.Write(p)
	}
	return len(p), nil
}

func journalPriority(l zerolog.Level) journal.Priority {
	switch l {
	case zerolog.TraceLevel, zerolog.DebugLevel:
		return journal.PriDebug
	case zerolog.WarnLevel:
		return journal.PriWarning
	case zerolog.ErrorLevel:
		return journal.PriErr
	case zerolog.FatalLevel:
		return journal.PriCrit
	case zerolog.PanicLevel:
		return journal.PriEmerg
	}
	return journal.PriInfo
}

// journalFields turns one zerolog JSON line into a message and journal
// fields. journald stamps its own time and priority, so those are dropped.
func journalFields(p []byte) (string, map[string]string) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return strings.TrimSpace(string(p)), nil
	}
	msg, _ := m[zerolog.MessageFieldName].(string)
	vars := make(map[string]string, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case zerolog.MessageFieldName, zerolog.TimestampFieldName, zerolog.LevelFieldName:
			continue
		}
		var v string
		switch x := m[k].(type) {
		case string:
			v = x
		case nil:
			v = "null"
		case float64, bool:
			v = fmt.Sprint(x)
		default:
			b, _ := json.Marshal(x)
			v = string(b)
		}
		vars[journalName(k)] = v
	}
	if msg == "" {
		msg = vars["ERROR"]
	}
	return msg, vars
}

// journalName maps a zerolog field name to a valid journal field name:
// upper case letters, digits and underscores, not starting with an
// underscore or a digit (those are journald's trusted fields).
func journalName(k string) string {
	b := []byte(strings.ToUpper(k))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	s := string(b)
	if s == "" || s[0] == '_' || s[0] >= '0' && s[0] <= '9' {
		s = "F" + s
	}
	return s
}
