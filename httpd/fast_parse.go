//go:build linux

package httpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"unsafe"

	"github.com/http-status/http_status/internal/check"
)

// This file is the fast engine's HTTP/1.1 request parser and response
// writer. They are portable (the epoll loops are Linux-only) so that the
// fuzz test and the benchmark run everywhere.
//
// The parser only answers the requests it fully understands: a request line
// "METHOD SP origin-form-target SP HTTP/1.0|HTTP/1.1" and headers it can
// check cheaply. Anything unusual (a body, Transfer-Encoding, Expect, a
// second Host or Connection header, an obs-fold line, an escaped path,
// another HTTP version...) is handed to net/http, which answers exactly as
// before, errors included.

// parse outcomes.
const (
	reqIncomplete = iota // the header block is not complete yet
	reqAnswer            // answer it here (see fastReq.kind)
	reqHandoff           // let net/http serve this request
	reqBad               // malformed request line or header line: 400 and close
	reqTooLarge          // header block longer than the limit: 431 and close
)

// request kinds the engine answers itself.
const (
	kindStatus    = iota // GET or HEAD /status
	kindOptions          // OPTIONS / or OPTIONS /status: status.html, with Allow
	kindBadMethod        // a method other than GET, HEAD, OPTIONS: 405
)

// fastReq is one parsed request. Its query aliases the read buffer.
type fastReq struct {
	kind      int
	head      bool
	http10    bool
	close     bool // close after the answer (Connection: close, or HTTP/1.0 without keep-alive)
	keepAlive bool // HTTP/1.0 with a keep-alive token (answered with "Connection: keep-alive")
	post      bool // the method was POST (net/http then tolerates CR/LF before the next request)
	query     []byte
}

// parseRequest parses the request at the start of b. n is the length of its
// header block (the request has no body) when the outcome is reqAnswer; for
// reqIncomplete, reqBad and reqTooLarge n is 0. limit bounds the header
// block.
func parseRequest(b []byte, limit int, r *fastReq) (n int, outcome int) {
	// net/http answers 400 to a request starting with an empty line; so
	// does the parser (the request line is empty).
	start := 0
	// Find the end of the header block: an empty line (CRLF or bare LF).
	end := -1
	for i := start; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			end = i + 2
			break
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			end = i + 3
			break
		}
		if i >= limit {
			break
		}
	}
	if end < 0 {
		if len(b) > limit {
			return 0, reqTooLarge
		}
		// net/http reads the request line first and answers a bad one
		// (an invalid method too) at once, without waiting for the
		// headers.
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < limit {
			line, _ := nextLine(b[:i+1])
			if badRequestLine(line) {
				return 0, reqBad
			}
		}
		// A method byte no token allows (a TLS handshake, binary noise)
		// can only end in that 400: answer it now instead of holding
		// the connection until the read-header timeout, waiting for a
		// line end that may never come. CR and LF wait for their line.
		for _, c := range b {
			if c == ' ' {
				break
			}
			if !isTokenByte(c) && c != '\r' && c != '\n' {
				return 0, reqBad
			}
		}
		return 0, reqIncomplete
	}
	if end > limit {
		return 0, reqTooLarge
	}
	*r = fastReq{}
	line, rest := nextLine(b[start:end])
	// Request line.
	if badRequestLine(line) {
		return 0, reqBad
	}
	sp1 := bytes.IndexByte(line, ' ')
	method := line[:sp1]
	tail := line[sp1+1:]
	sp2 := bytes.IndexByte(tail, ' ')
	target, version := tail[:sp2], tail[sp2+1:]
	switch string(version) { // no allocation: compared, not converted
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.http10 = true
	default:
		return end, reqHandoff // net/http answers 505 or serves HTTP/1.x
	}
	for _, c := range method {
		if !isTokenByte(c) {
			return end, reqHandoff // net/http: 400 invalid method
		}
	}
	// The target: origin-form only, printable ASCII, no escapes in the
	// path (net/http decodes them), no fragment.
	if len(target) == 0 || target[0] != '/' {
		return end, reqHandoff
	}
	path, query := target, []byte(nil)
	for i, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return end, reqHandoff
		}
		if c == '?' && query == nil {
			path, query = target[:i], target[i+1:]
			if query == nil {
				query = target[i+1 : i+1]
			}
		}
	}
	for _, c := range path {
		if c == '%' {
			return end, reqHandoff
		}
	}
	switch string(method) {
	case "GET":
	case "HEAD":
		r.head = true
	case "POST":
		r.post = true
		r.kind = kindBadMethod
	case "OPTIONS":
		r.kind = kindOptions
	case "CONNECT", "PRI":
		return end, reqHandoff
	default:
		r.kind = kindBadMethod
	}
	switch r.kind {
	case kindStatus:
		if string(path) != "/status" {
			return end, reqHandoff
		}
		r.query = query
	case kindOptions:
		if string(path) != "/" && string(path) != "/status" {
			return end, reqHandoff
		}
	}
	// Headers.
	var hosts, conns int
	var connVal []byte
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return end, reqHandoff // obs-fold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 0, reqBad
		}
		name := line[:colon]
		for _, c := range name {
			if !isTokenByte(c) {
				return end, reqHandoff // net/http: 400 invalid header name
			}
		}
		val := bytes.Trim(line[colon+1:], " \t")
		for _, c := range val {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return end, reqHandoff // net/http: 400 invalid header value
			}
		}
		switch len(name) {
		case 4:
			if eqFoldB(name, "HOST") {
				hosts++
				for _, c := range val {
					if !validHostByte(c) {
						return end, reqHandoff
					}
				}
			}
		case 6:
			if eqFoldB(name, "EXPECT") {
				return end, reqHandoff
			}
		case 10:
			if eqFoldB(name, "CONNECTION") {
				conns++
				connVal = val
			}
		case 14:
			if eqFoldB(name, "CONTENT-LENGTH") && string(val) != "0" {
				return end, reqHandoff
			}
		case 17:
			if eqFoldB(name, "TRANSFER-ENCODING") {
				return end, reqHandoff
			}
		}
	}
	if hosts > 1 || conns > 1 || (hosts == 0 && !r.http10 && !hostlessOK(path, r.kind == kindOptions)) {
		return end, reqHandoff // net/http: 400 with its reason
	}
	if r.http10 {
		// As net/http: with a keep-alive token the answer says
		// "Connection: keep-alive" and the connection stays open, a
		// close token or not; without one it closes.
		r.keepAlive = hasToken(connVal, "KEEP-ALIVE")
		r.close = !r.keepAlive
	} else {
		r.close = hasToken(connVal, "CLOSE")
	}
	return end, reqAnswer
}

// badRequestLine reports whether net/http answers 400 to the request line
// at once: not "METHOD SP TARGET SP VERSION" with a version that at least
// starts like "HTTP/x".
func badRequestLine(line []byte) bool {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return true
	}
	tail := line[sp1+1:]
	sp2 := bytes.IndexByte(tail, ' ')
	if sp2 < 0 {
		return true
	}
	version := tail[sp2+1:]
	switch string(version) {
	case "HTTP/1.1", "HTTP/1.0":
		return false
	}
	return !(len(version) > 5 && string(version[:5]) == "HTTP/")
}

// cutLineIsBad reports whether net/http answers 400 to a request line cut
// off by the read-header timeout (line: every byte that came, no LF). Its
// bufio.Reader hands over the bytes it has with no error, so net/http
// parses them as the whole request line: one that parses leaves it reading
// headers, and the timeout there closes silently; one that does not is a
// 400. From netHTTPBufSize bytes on, the reader is full and still waiting
// for the line's end when the timeout comes: silent too, unless a CR that
// it held back (it might start a CRLF) is handed over alone as the line's
// end. The parse is net/http's own: the line, then an error where the
// headers would be read.
func cutLineIsBad(line []byte) bool {
	if len(line) >= netHTTPBufSize && !(len(line) == netHTTPBufSize && line[len(line)-1] == '\r') {
		return false
	}
	if line[len(line)-1] == '\r' {
		// The CR stays in the line (no LF follows to take it off), so
		// the version, or the line, is malformed.
		return true
	}
	b := make([]byte, 0, len(line)+1)
	b = append(append(b, line...), '\n')
	_, err := http.ReadRequest(bufio.NewReader(io.MultiReader(bytes.NewReader(b), errReader{})))
	return !errors.Is(err, errCutHere)
}

// netHTTPBufSize is the size of net/http's bufio.Reader on a connection.
const netHTTPBufSize = 4096

var errCutHere = errors.New("cut here")

// errReader stands for the timeout where net/http would read the headers.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errCutHere }

// nextLine splits b after its first LF; line has the LF and a CR before it
// removed.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

// hasToken is net/http's test of a Connection value for a token (its
// hasToken): ASCII case-insensitive, bounded by the value's ends, spaces,
// commas or tabs. token is upper case.
func hasToken(v []byte, token string) bool {
	for sp := 0; sp+len(token) <= len(v); sp++ {
		if sp > 0 && !isTokenBoundary(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !isTokenBoundary(v[end]) {
			continue
		}
		if eqFoldB(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

func isTokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

// eqFoldB is [eqFold] for a byte slice (no copy).
func eqFoldB(b []byte, w string) bool {
	return check.EqualFoldASCII(unsafeString(b), w)
}

// isTokenByte reports whether c may appear in an RFC 9110 token.
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validHostByte is net/http's rule for the bytes of a Host header.
func validHostByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '$', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', ':', ';', '=', '[', ']', '_', '~':
		return true
	}
	return false
}

// Fixed answers for requests the engine refuses, byte for byte what net/http
// sends for a malformed request and for headers over MaxHeaderBytes.
const (
	respBadRequest = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
	respTooLarge   = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large"
)

// fastAnswer answers r into out, as [Handler] would through net/http: the
// same status line, the same headers in net/http's order (sorted, then
// Date, then Connection), the same body. draining forces "Connection:
// close", as net/http does once keep-alives are disabled. It reports
// whether the connection must close after the answer. It does not
// allocate when out has room.
func fastAnswer(out []byte, c *check.Checker, codes *CodeCounts, r *fastReq, date []byte, draining bool) ([]byte, bool) {
	var res check.Result
	allow := false
	switch r.kind {
	case kindStatus:
		res = c.Check(unsafeString(r.query))
	case kindOptions:
		res = c.Check("")
		allow = true
	default:
		res = check.Result{Code: http.StatusMethodNotAllowed, Body: BodyBadMethod}
		allow = true
	}
	codes.Inc(res.Code)
	closeAfter := r.close || draining
	if r.http10 {
		out = append(out, "HTTP/1.0 "...)
	} else {
		out = append(out, "HTTP/1.1 "...)
	}
	out = strconv.AppendInt(out, int64(res.Code), 10)
	out = append(out, ' ')
	if t := http.StatusText(res.Code); t != "" {
		out = append(out, t...)
	} else {
		out = append(out, "status code "...)
		out = strconv.AppendInt(out, int64(res.Code), 10)
	}
	out = append(out, "\r\n"...)
	if allow {
		out = append(out, "Allow: "+allowed+"\r\n"...)
	}
	out = append(out, "Cache-Control: private, no-store\r\nContent-Length: "...)
	n := len(res.Body)
	if res.Reason != "" {
		n += len("reason: ") + len(res.Reason) + 1
	}
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, "\r\nContent-Type: text/plain; charset=utf-8\r\nServer: "+ServerName+"\r\n"...)
	if res.Reason != "" {
		out = append(out, "X-Status-Reason: "...)
		out = appendHeaderValue(out, res.Reason)
		out = append(out, "\r\n"...)
	}
	if res.Code != http.StatusBadRequest && r.kind != kindBadMethod {
		out = append(out, "X-Status-State: "...)
		out = append(out, res.State.String()...)
		out = append(out, "\r\n"...)
		if res.Weight >= 0 {
			out = append(out, "X-Status-Weight: "...)
			out = strconv.AppendInt(out, int64(res.Weight), 10)
			out = append(out, "%\r\n"...)
		}
	}
	out = append(out, "Date: "...)
	out = append(out, date...)
	out = append(out, "\r\n"...)
	switch {
	case closeAfter && !r.http10:
		out = append(out, "Connection: close\r\n"...)
	case r.keepAlive:
		// net/http sends it for an HTTP/1.0 keep-alive request even
		// when it closes after (keep-alives disabled while stopping).
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	out = append(out, "\r\n"...)
	if !r.head {
		out = append(out, res.Body...)
		if res.Reason != "" {
			out = append(out, "reason: "...)
			out = append(out, res.Reason...)
			out = append(out, '\n')
		}
	}
	return out, closeAfter
}

// appendHeaderValue writes v as net/http's Header.Write does: CR and LF
// become spaces, surrounding whitespace is trimmed.
func appendHeaderValue(out []byte, v string) []byte {
	i, j := 0, len(v)
	for i < j && isHdrSpace(v[i]) {
		i++
	}
	for j > i && isHdrSpace(v[j-1]) {
		j--
	}
	for k := i; k < j; k++ {
		c := v[k]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		out = append(out, c)
	}
	return out
}

func isHdrSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// unsafeString views b as a string for the duration of a call that does
// not retain it ([check.Checker.Check] does not).
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
