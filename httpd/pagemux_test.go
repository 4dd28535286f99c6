//go:build linux

package httpd

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestPageMux: the pages' own listener serves what is mounted at exact
// paths and the index to browsers only (GET and HEAD); everything else,
// /status and OPTIONS / included, is its plain 404, with the Server header.
func TestPageMux(t *testing.T) {
	m := NewPageMux()
	m.Handle(PathBoard, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "board") }))
	m.HandleIndex(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "index") }))
	for _, tc := range []struct {
		method, path, accept string
		code                 int
		body                 string
	}{
		{"GET", PathBoard, "", 200, "board"},
		{"GET", "/", "text/html", 200, "index"},
		{"GET", "/", "*/*", 404, BodyPagesNotFound},
		{"OPTIONS", "/", "text/html", 404, BodyPagesNotFound},
		{"GET", "/status", "", 404, BodyPagesNotFound},
		{"OPTIONS", "/status", "", 404, BodyPagesNotFound},
		{"GET", PathBoard + "/", "", 404, BodyPagesNotFound},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, req)
		if rec.Code != tc.code || rec.Body.String() != tc.body || rec.Header().Get("Server") != ServerName {
			t.Errorf("%s %s (Accept %q): %d %q Server %q, want %d %q", tc.method, tc.path, tc.accept, rec.Code, rec.Body, rec.Header().Get("Server"), tc.code, tc.body)
		}
	}
}
