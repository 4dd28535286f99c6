//go:build linux

package httpd

import (
	"log"
	"unsafe"

	"github.com/rs/zerolog"
)

// unsafeBytes views a constant string as bytes for Write, which does not
// modify or retain them.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// newStdLogger routes net/http's own error log (TLS junk, accept errors) to
// zerolog at debug level: a scanner must not flood the log.
func newStdLogger(l zerolog.Logger) *log.Logger {
	return log.New(zlWriter{l}, "", 0)
}

type zlWriter struct{ l zerolog.Logger }

func (z zlWriter) Write(p []byte) (int, error) {
	z.l.Debug().Msg(string(p))
	return len(p), nil
}
