//go:build linux

package main

import (
	"io"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/rs/zerolog/journald"
)

// --log-format journal (and auto when stderr is the journal stream, i.e.
// under systemd): each zerolog line goes to journald as one entry with the
// message as MESSAGE, the level as PRIORITY and every other field as an
// upper-case journal field (component=watcher becomes COMPONENT=watcher), so
// `journalctl -u http_status COMPONENT=watcher` works. The writer is
// zerolog's own (github.com/rs/zerolog/journald); it also adds the whole
// line as JSON=.

// stderrIsJournal reports whether stderr is connected to journald
// (JOURNAL_STREAM matches) and journald's socket is there.
func stderrIsJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok && journal.Enabled()
}

// newJournalWriter is zerolog's journald writer (fields upper-cased,
// numbers as written, the level as PRIORITY), falling back to fallback for
// an entry journald refuses, so that no line is lost.
func newJournalWriter(fallback io.Writer) io.Writer {
	return journalFallback{j: journald.NewJournalDWriter(), fallback: fallback}
}

type journalFallback struct {
	j, fallback io.Writer
}

func (w journalFallback) Write(p []byte) (int, error) {
	if n, err := w.j.Write(p); err == nil {
		return n, nil
	}
	return w.fallback.Write(p)
}
