package main

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	for _, tt := range []struct{ in, name, mode, addr, payload string }{
		{"nginx=http://127.0.0.1:80/status.html", "nginx", "http", "127.0.0.1:80", "GET /status.html HTTP/1.0\r\nHost: 127.0.0.1:80\r\n\r\n"},
		{"ours ?SERVICE=x=http://127.0.0.1:81/status?SERVICE=x", "ours ?SERVICE=x", "http", "127.0.0.1:81", "GET /status?SERVICE=x HTTP/1.0\r\nHost: 127.0.0.1:81\r\n\r\n"},
		{"agent x.80=agent://127.0.0.1:82/x.80", "agent x.80", "agent", "127.0.0.1:82", "x.80\n"},
		{"agent default=agent://127.0.0.1:82/", "agent default", "agent", "127.0.0.1:82", ""},
	} {
		got, err := parseTarget(tt.in)
		if err != nil || got.name != tt.name || got.mode != tt.mode || got.addr != tt.addr || string(got.payload) != tt.payload {
			t.Errorf("parseTarget(%q) = %+v (payload %q), %v", tt.in, got, got.payload, err)
		}
	}
	for _, bad := range []string{"x", "=http://127.0.0.1:1/", "x=ftp://127.0.0.1:1/", "x=http://127.0.0.1/"} {
		if _, err := parseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q) accepted", bad)
		}
	}
}

// TestClients: both clients count answers from an HTTP server and a
// line server, and count a wrong answer as such.
func TestClients(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("OK\n"))
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				if line == "x.80\n" {
					c.Write([]byte("up ready 100%\n"))
				} else {
					c.Write([]byte("down #bad request\n"))
				}
			}()
		}
	}()
	host := srv.Listener.Addr().String()
	agent := ln.Addr().String()
	for _, client := range []string{"go", "epoll"} {
		if client == "epoll" && !epollSupported {
			continue
		}
		for _, tt := range []struct {
			target string
			good   bool
		}{
			{"h=http://" + host + "/ok", true},
			{"h=http://" + host + "/missing", false},
			{"a=agent://" + agent + "/x.80", true},
			{"a=agent://" + agent + "/y.80", false},
		} {
			tg, err := parseTarget(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			var r result
			if client == "epoll" {
				r = runEpoll(&tg, 4, 2, 200*time.Millisecond, 2*time.Second, []byte("up "))
			} else {
				r = run(&tg, 4, 200*time.Millisecond, 2*time.Second, []byte("up "))
			}
			if tt.good && (r.ok == 0 || r.errs+r.bad != 0) {
				t.Errorf("%s client, %s: ok %d, errors %d (%v), bad %d; want only ok", client, tt.target, r.ok, r.errs, r.firstErr, r.bad)
			}
			if !tt.good && (r.ok != 0 || r.bad == 0) {
				t.Errorf("%s client, %s: ok %d, bad %d; want only bad", client, tt.target, r.ok, r.bad)
			}
		}
	}
}

func TestTSVLine(t *testing.T) {
	x := result{ok: 100, errs: 2, bad: 3, rps: 12345.678, p50: 1500 * time.Microsecond, p99: 12345 * time.Microsecond}
	got := tsvLine(2, "ours\tagent\nx.80", x)
	if want := "2\tours agent x.80\t12345.68\t1.500\t12.345\t2\t3\n"; got != want {
		t.Errorf("tsvLine = %q, want %q", got, want)
	}
}
