package fcgi

import (
	"context"
	"net"
	"net/http"
	"net/http/fcgi"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDoAgainstNetHTTPFcgi asks Go's own FastCGI responder (net/http/fcgi,
// a real peer; php-fpm is tested in probe/) for a page, a 404 and a page
// that writes to stderr.
func TestDoAgainstNetHTTPFcgi(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fcgi.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go fcgi.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ping":
			w.Header().Set("X-Test", "yes")
			_, _ = w.Write([]byte("pong"))
		default:
			http.NotFound(w, r)
		}
	}))
	params := func(script string) [][2]string {
		return [][2]string{{"REQUEST_METHOD", "GET"}, {"REQUEST_URI", script}, {"SCRIPT_NAME", script}, {"SERVER_PROTOCOL", "HTTP/1.1"}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := Do(ctx, "unix", sock, params("/ping"))
	if err != nil || r.Status != 200 || string(r.Body) != "pong" || r.Header.Get("X-Test") != "yes" {
		t.Fatalf("/ping: %+v %v", r, err)
	}
	r, err = Do(ctx, "unix", sock, params("/nope"))
	if err != nil || r.Status != 404 || !strings.Contains(string(r.Body), "not found") {
		t.Fatalf("/nope: %+v %v", r, err)
	}
	// Nothing listens: a clear error, not a hang.
	if _, err := Do(ctx, "unix", filepath.Join(t.TempDir(), "none.sock"), params("/ping")); err == nil {
		t.Fatal("no error from a socket nobody listens on")
	}
}
