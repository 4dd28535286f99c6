package probecheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/dockerapi"
	"github.com/http-status/http_status/internal/testenv"
)

// runCheck runs one attempt of chk with the given timeout.
func runCheck(t *testing.T, chk Checker, timeout time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	o, err := chk.Check(ctx)
	return o.Msg, err
}

// resetServer accepts connections and resets them (RST) at once.
func resetServer(t *testing.T) string {
	t.Helper()
	return testenv.ServeTCP(t, func(c net.Conn) {
		buf := make([]byte, 512)
		_, _ = c.Read(buf) // let the request arrive, then reset
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
}

func TestHTTPProbe(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "app.example" {
			http.Error(w, "wrong host "+r.Host, 421)
			return
		}
		io.WriteString(w, "all is pong here")
	})
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/slowbody", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/head", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "HEAD" {
			http.Error(w, "want HEAD", http.StatusMethodNotAllowed)
		}
	})
	addr := testenv.ServeHTTP(t, mux)
	// Method GET is the config's default.
	get := func(path string) *HTTP { return &HTTP{Method: "GET", Address: addr, Path: path} }

	msg, err := runCheck(t, &HTTP{Method: "GET", Address: addr, Path: "/ok", Host: "app.example", ExpectBody: "pong"}, 5*time.Second)
	if err != nil || msg != "HTTP 200" {
		t.Errorf("ok: %q, %v", msg, err)
	}
	_, err = runCheck(t, get("/ok"), 5*time.Second)
	testenv.ErrContains(t, err, "HTTP 421, want 200-399")
	_, err = runCheck(t, &HTTP{Method: "GET", Address: addr, Path: "/ok", Host: "app.example", ExpectBody: "ping"}, 5*time.Second)
	testenv.ErrContains(t, err, `body lacks "ping"`)
	_, err = runCheck(t, get("/500"), 5*time.Second)
	testenv.ErrContains(t, err, "HTTP 500")
	msg, err = runCheck(t, &HTTP{Method: "GET", Address: addr, Path: "/500", ExpectStatus: []int{500, 503}}, 5*time.Second)
	if err != nil || msg != "HTTP 500" {
		t.Errorf("expected 500: %q, %v", msg, err)
	}
	// A redirect is judged, not followed.
	if msg, err := runCheck(t, get("/redirect"), 5*time.Second); err != nil || msg != "HTTP 302" {
		t.Errorf("redirect: %q, %v", msg, err)
	}
	_, err = runCheck(t, &HTTP{Method: "GET", Address: addr, Path: "/redirect", ExpectStatus: []int{200}}, 5*time.Second)
	testenv.ErrContains(t, err, "HTTP 302, want 200")
	if _, err := runCheck(t, &HTTP{Method: "HEAD", Address: addr, Path: "/head"}, 5*time.Second); err != nil {
		t.Errorf("HEAD: %v", err)
	}
	// Slow peers: no headers, then headers but no body.
	_, err = runCheck(t, get("/hang"), 200*time.Millisecond)
	testenv.ErrContains(t, err, "timeout after")
	_, err = runCheck(t, &HTTP{Method: "GET", Address: addr, Path: "/slowbody", ExpectBody: "x"}, 200*time.Millisecond)
	testenv.ErrContains(t, err, "timeout after")

	// A reset connection and a closed port.
	_, err = runCheck(t, &HTTP{Method: "GET", Address: resetServer(t), Path: "/"}, 5*time.Second)
	if err == nil || !(strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "EOF")) {
		t.Errorf("reset: %v", err)
	}
	_, err = runCheck(t, &HTTP{Method: "GET", Address: testenv.ClosedAddr(t), Path: "/"}, 5*time.Second)
	testenv.ErrContains(t, err, "connection refused")
}

// TestHTTPProbeHeaderLimit: an answer's headers are read up to 64 KiB; an
// answer with more fails the attempt instead of being held in memory (net/http's
// default let each of up to --probe-concurrency answers take 10 MiB).
func TestHTTPProbeHeaderLimit(t *testing.T) {
	t.Parallel()
	addr := testenv.ServeHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			for i := range 70 {
				w.Header().Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("a", 1000))
			}
		} else {
			w.Header().Set("X-Fine", strings.Repeat("a", 60<<10))
		}
		io.WriteString(w, "pong")
	}))
	if _, err := runCheck(t, &HTTP{Method: "GET", Address: addr, Path: "/fine", ExpectBody: "pong"}, 5*time.Second); err != nil {
		t.Fatalf("60 KiB of headers: %v", err)
	}
	_, err := runCheck(t, &HTTP{Method: "GET", Address: addr, Path: "/big", ExpectBody: "pong"}, 5*time.Second)
	testenv.ErrContains(t, err, "server response headers exceeded 65536 bytes")
}

func TestTCPProbe(t *testing.T) {
	t.Parallel()
	addr := testenv.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		switch strings.TrimSpace(string(buf[:n])) {
		case "PING":
			io.WriteString(c, "+PO")
			time.Sleep(10 * time.Millisecond) // split reply
			io.WriteString(c, "NG\r\n")
		case "QUIT":
			io.WriteString(c, "bye\r\n")
		case "SILENT":
			c.Read(buf) // wait for the client to give up
		}
	})
	if msg, err := runCheck(t, &TCP{Address: addr}, 5*time.Second); err != nil || msg != "connected" {
		t.Errorf("connect: %q, %v", msg, err)
	}
	if msg, err := runCheck(t, &TCP{Address: addr, Send: "PING\r\n", Expect: "+PONG"}, 5*time.Second); err != nil || !strings.Contains(msg, "+PONG") {
		t.Errorf("PING: %q, %v", msg, err)
	}
	_, err := runCheck(t, &TCP{Address: addr, Send: "QUIT\r\n", Expect: "+PONG"}, 5*time.Second)
	testenv.ErrContains(t, err, "connection closed before")
	_, err = runCheck(t, &TCP{Address: addr, Send: "SILENT\r\n", Expect: "+PONG"}, 200*time.Millisecond)
	testenv.ErrContains(t, err, "timeout after")
	_, err = runCheck(t, &TCP{Address: testenv.ClosedAddr(t)}, 5*time.Second)
	testenv.ErrContains(t, err, "connection refused")
	_, err = runCheck(t, &TCP{Address: resetServer(t), Send: "hi", Expect: "x"}, 5*time.Second)
	if err == nil {
		t.Error("reset: no error")
	}
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// gone reports whether pid no longer runs (absent, or a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestExecProbe(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	ok := writeScript(t, dir, "ok", "echo \"replica lag 0s\"\necho second line\nexit 0\n")
	fail := writeScript(t, dir, "fail", "echo \"replica lag 300s\" >&2\nexit 1\n")
	env := writeScript(t, dir, "env", "echo \"service=$HTTP_STATUS_SERVICE\"\n")
	pidfile := filepath.Join(dir, "child.pid")
	hang := writeScript(t, dir, "hang", "sleep 60 &\necho $! > "+pidfile+"\necho started\nsleep 60\n")
	// Parallel only once the scripts are written: a process forked by a
	// parallel test while a script is open for writing would hold it open
	// and make its exec fail with "text file busy" (golang.org/issue/22315).
	t.Parallel()

	spec := func(p string) *Exec { return &Exec{Command: []string{p}, Service: "db.3306"} }
	if msg, err := runCheck(t, spec(ok), 5*time.Second); err != nil || msg != "replica lag 0s" {
		t.Errorf("exit 0: %q, %v", msg, err)
	}
	_, err := runCheck(t, spec(fail), 5*time.Second)
	testenv.ErrContains(t, err, "exit 1: replica lag 300s")
	if msg, err := runCheck(t, spec(env), 5*time.Second); err != nil || msg != "service=db.3306" {
		t.Errorf("env: %q, %v", msg, err)
	}
	_, err = runCheck(t, spec(filepath.Join(dir, "missing")), 5*time.Second)
	testenv.ErrContains(t, err, "no such file")

	_, err = runCheck(t, spec(hang), 300*time.Millisecond)
	testenv.ErrContains(t, err, "timeout after")
	testenv.ErrContains(t, err, "process group killed")
	b, rerr := os.ReadFile(pidfile)
	if rerr != nil {
		t.Fatalf("the script did not start its child: %v", rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the script's child %d survived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExecProbeOutputBound: a script may print any amount; the attempt
// keeps the first 4 KiB of its output, never blocks the script on a full
// pipe, and its message is a line of that.
func TestExecProbeOutputBound(t *testing.T) {
	for _, tool := range []string{"/bin/sh", "head", "tr"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	dir := t.TempDir()
	chatty := writeScript(t, dir, "chatty", "head -c 20000000 /dev/zero | tr '\\000' a\nhead -c 1000000 /dev/zero >&2\nexit 3\n")
	t.Parallel()
	_, err := runCheck(t, &Exec{Command: []string{chatty}}, 20*time.Second)
	testenv.ErrContains(t, err, "exit 3: aaaa")
	if n := len(err.Error()); n > len("exit 3: ")+4096 {
		t.Fatalf("message of %d bytes from a 20 MB line: want at most 4 KiB", n)
	}
}

// engineStandIn is NOT a real Docker engine: it is a server built from the
// documented Engine API (GET /v1.40/containers/{id}/json, ContainerInspect, only
// under the pinned version) on a
// unix socket, answering canned states. See TestContainerProbeDocker for a
// real engine.
func engineStandIn(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]any{
		"web":       map[string]any{"Status": "running", "Running": true},
		"healthy":   map[string]any{"Status": "running", "Running": true, "Health": map[string]any{"Status": "healthy", "FailingStreak": 0}},
		"unhealthy": map[string]any{"Status": "running", "Running": true, "Health": map[string]any{"Status": "unhealthy", "FailingStreak": 3}},
		"starting":  map[string]any{"Status": "running", "Running": true, "Health": map[string]any{"Status": "starting"}},
		"exited":    map[string]any{"Status": "exited", "Running": false, "ExitCode": 137},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /"+dockerapi.APIVersion+"/containers/{name}/json", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "bigheaders" {
			for i := range 70 {
				w.Header().Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("a", 1000))
			}
			r.SetPathValue("name", "web")
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PathValue("name") == "broken" {
			w.WriteHeader(500)
			json.NewEncoder(w).Encode(map[string]string{"message": "stand-in failure"})
			return
		}
		st, ok := states[r.PathValue("name")]
		if !ok {
			w.WriteHeader(404)
			json.NewEncoder(w).Encode(map[string]string{"message": "No such container: " + r.PathValue("name")})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"Id": "0123", "Name": "/" + r.PathValue("name"), "State": st})
	})
	// ContainerList: the label "set=N" lists the names of set N (the
	// stand-in's IDs are the names), "gone" has no state (removed after
	// the list) and "broken" answers 500.
	sets := map[string][]string{"set=1": {"web", "gone"}, "set=2": {"web", "broken"}}
	mux.HandleFunc("GET /"+dockerapi.APIVersion+"/containers/json", func(w http.ResponseWriter, r *http.Request) {
		var f map[string][]string
		_ = json.Unmarshal([]byte(r.URL.Query().Get("filters")), &f)
		list := []map[string]any{}
		for _, l := range f["label"] {
			for _, n := range sets[l] {
				list = append(list, map[string]any{"Id": n, "Names": []string{"/" + n}})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(list)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestContainerProbeStandIn(t *testing.T) {
	t.Parallel()
	sock := engineStandIn(t)
	spec := func(name string) *Container { return &Container{Socket: sock, Name: name} }
	for _, tc := range []struct{ name, msg, err string }{
		{"web", "running", ""},
		{"healthy", "running, healthy", ""},
		{"unhealthy", "", "running but unhealthy"},
		{"starting", "", "running but starting"},
		{"exited", "", "is exited"},
		{"nope", "", `no such container "nope"`},
		{"bigheaders", "", "server response headers exceeded 65536 bytes"},
	} {
		msg, err := runCheck(t, spec(tc.name), 5*time.Second)
		if tc.err == "" {
			if err != nil || msg != tc.msg {
				t.Errorf("%s: %q, %v; want %q", tc.name, msg, err, tc.msg)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
	// A container gone between the list and the inspect is one unhealthy
	// container; an engine error on the inspect fails the attempt with the
	// engine's words, not "removed".
	for _, tc := range []struct{ label, err string }{
		{"set=1", `1/2 containers with label "set=1" healthy (want all): container gone is removed`},
		{"set=2", "inspect container broken: engine API answered HTTP 500: stand-in failure"},
	} {
		_, err := runCheck(t, &Container{Socket: sock, Labels: []string{tc.label}, Any: tc.label == "set=2"}, 5*time.Second)
		if err == nil || err.Error() != tc.err {
			t.Errorf("label %s: error %v, want %q", tc.label, err, tc.err)
		}
	}
	_, err := runCheck(t, &Container{Socket: filepath.Join(t.TempDir(), "none.sock"), Name: "web"}, 5*time.Second)
	if err == nil || !errors.Is(err, syscall.ENOENT) && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing socket: %v", err)
	}
}

// TestFastCGIGoServer checks the client against Go's own FastCGI server
// (net/http/fcgi), over TCP: params arrive, Status and body are parsed.
func TestFastCGIGoServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go fcgi.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := fcgi.ProcessEnv(r)
		switch {
		case r.Method != "GET" || env["SCRIPT_FILENAME"] != r.URL.Path:
			http.Error(w, "bad params "+r.Method+" "+env["SCRIPT_FILENAME"], 400)
		case r.URL.Path == "/ping":
			io.WriteString(w, "pong")
		case r.URL.Path == "/big":
			io.WriteString(w, strings.Repeat("x", 200000)+"pong")
		default:
			http.NotFound(w, r)
		}
	}))
	// What the config makes of address = host:port and the default
	// expect_body.
	script := func(path string) *FastCGI {
		return &FastCGI{Network: "tcp", Address: ln.Addr().String(), Script: path, ExpectBody: "pong"}
	}
	if msg, err := runCheck(t, script("/ping"), 5*time.Second); err != nil || msg != "200 pong" {
		t.Errorf("ping: %q, %v", msg, err)
	}
	if _, err := runCheck(t, script("/big"), 5*time.Second); err != nil {
		t.Errorf("big body over several records: %v", err)
	}
	_, err = runCheck(t, script("/nothing"), 5*time.Second)
	testenv.ErrContains(t, err, "status 404, want 200")
}

func TestValidNames(t *testing.T) {
	for s, want := range map[string]bool{"GET": true, "HEAD": true, "M-SEARCH": true, "X_1": true, "": false, "GET /": false, "G\r": false, "PÖST": false} {
		if got := ValidMethod(s); got != want {
			t.Errorf("ValidMethod(%q) = %v, want %v", s, got, want)
		}
	}
	for s, want := range map[string]bool{"app": true, "app-": true, "a1_b.c-d": true, "9lives": true, "": false, "-app": false, ".x": false, "_x": false, "a/b": false, "a b": false} {
		if got := ValidContainerName(s); got != want {
			t.Errorf("ValidContainerName(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestExecProbeBackgroundChild: a script that starts something in the
// background (`daemon &`, as init-style scripts do) and exits 0 passes at
// once, although the child inherited its stdout; the child, left in the
// script's process group, is killed. Also in agent mode, whose stdout and
// stderr are read apart. A child that left the group (setsid) and keeps
// the pipe open holds the attempt at most a grace period, and still passes.
func TestExecProbeBackgroundChild(t *testing.T) {
	for _, tool := range []string{"/bin/sh", "sleep", "setsid"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "child.pid")
	exited := filepath.Join(dir, "exited")
	bg := writeScript(t, dir, "bg", "sleep 60 &\necho $! > "+pidfile+"\necho up\ndate +%s%N > "+exited+"\nexit 0\n")
	escaped := filepath.Join(dir, "escaped.pid")
	away := writeScript(t, dir, "away", "setsid sh -c 'echo $$ > "+escaped+"; exec sleep 60' &\nwhile [ ! -s "+escaped+" ]; do :; done\necho up\nexit 0\n")
	t.Parallel()

	for _, agent := range []bool{false, true} {
		msg, err := runCheck(t, &Exec{Command: []string{bg}, Agent: agent}, 10*time.Second)
		if err != nil || msg != "up" {
			t.Fatalf("agent=%v: background child: %q, %v; want a pass with \"up\"", agent, msg, err)
		}
		// Measured from the script's exit, not from the start: a slow
		// machine's process starts are not the probe's wait.
		e, rerr := os.ReadFile(exited)
		ns, perr := strconv.ParseInt(strings.TrimSpace(string(e)), 10, 64)
		if rerr != nil || perr != nil {
			t.Fatalf("agent=%v: the script's exit time: %v %v", agent, rerr, perr)
		}
		if d := time.Since(time.Unix(0, ns)); d > 900*time.Millisecond {
			t.Errorf("agent=%v: the attempt ended %s after the script exited: it waited for the child's stdout", agent, d)
		}
		b, rerr := os.ReadFile(pidfile)
		if rerr != nil {
			t.Fatal(rerr)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		waitGone(t, pid)
	}

	msg, err := runCheck(t, &Exec{Command: []string{away}}, 10*time.Second)
	b, rerr := os.ReadFile(escaped)
	if rerr == nil {
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err != nil || msg != "up" {
		t.Fatalf("child in its own session: %q, %v; want a pass with \"up\"", msg, err)
	}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the script's child %d survived the script", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
