//go:build linux

package main

import (
	"bufio"
	"fmt"
	"github.com/http-status/http_status/internal/testenv"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// seedAgentScript is an agent script as the xinetd-fed ones were written:
// it asks the backend over HTTP, greps the body and prints HAProxy agent
// words, and exits 0 whatever it found.
const seedAgentScript = `#!/bin/sh
body=$(curl -s --max-time 0.25 "http://$1/health") || { echo "down #backend unreachable"; exit 0; }
if echo "$body" | grep -q '^OK'; then
	echo "up 100%"
elif echo "$body" | grep -q '^SLOW'; then
	echo "up 50% #slow backend"
elif echo "$body" | grep -q '^DRAIN'; then
	echo "drain #$body"
else
	echo "down #backend says: $body"
fi
exit 0
`

// TestAgentScriptProbe runs the daemon with an exec probe reading a
// seed-style agent script's output (output = "agent"), next to the same
// script read by its exit code only (the old behaviour: it passes while
// printing "down"). The backend's body is switched; /status and the agent
// port must follow the script's words: weight, drain, down, unreachable.
func TestAgentScriptProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon and a script; skipped with -short")
	}
	toolPath(t, "curl", "the agent script curls its backend")
	toolPath(t, "grep", "the agent script greps the body")

	var mu sync.Mutex
	body := "OK"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(w, body)
	})}
	go backend.Serve(ln)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			backend.Close()
		}
	})
	setBody := func(b string) {
		mu.Lock()
		body = b
		mu.Unlock()
	}

	tmp := t.TempDir()
	script := filepath.Join(tmp, "agent.sh")
	if err := os.WriteFile(script, []byte(seedAgentScript), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(tmp, "probes.toml")
	probe := func(service, output string) string {
		return fmt.Sprintf("[[probe]]\nservice = %q\nname = \"agent\"\nkind = \"exec\"\ncommand = [%q, %q]\n%sinterval = \"300ms\"\ntimeout = \"300ms\"\nrise = 1\nfall = 1\n",
			service, script, ln.Addr().String(), output)
	}
	if err := os.WriteFile(conf, []byte(probe("api.8080", "output = \"agent\"\n")+probe("legacy.8080", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := filepath.Join(tmp, "flags")
	if err := os.MkdirAll(flags, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"api.8080", "legacy.8080"} {
		if err := os.WriteFile(filepath.Join(flags, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Parallel only once the script is written (see TestExecProbe in probe:
	// a fork meanwhile would hold it open, and its exec fail "text file busy").
	t.Parallel()
	port, agentPort := testenv.FreePort(t), testenv.FreePort(t)
	d := startDaemon(t, nil, "--dir", flags, "--port", strconv.Itoa(port), "--agent-port", strconv.Itoa(agentPort),
		"--config", conf, "--vips=false", "--log-format=json")

	type answer struct {
		code           int
		weight, reason string
		agent          string
	}
	get := func(service string) answer {
		var a answer
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status?SERVICE=%s&PORT=8080", port, service))
		if err != nil {
			return a
		}
		resp.Body.Close()
		a.code, a.weight, a.reason = resp.StatusCode, resp.Header.Get("X-Status-Weight"), resp.Header.Get("X-Status-Reason")
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(agentPort), 2*time.Second)
		if err != nil {
			return a
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "%s.8080\n", service)
		line, _ := bufio.NewReader(c).ReadString('\n')
		a.agent = strings.TrimSuffix(line, "\n")
		return a
	}
	expect := func(what, service string, want answer) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := get(service)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s answers %+v, want %+v\ndaemon log:\n%s", what, service, got, want, d.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	expect("backend OK", "api", answer{200, "100%", "", "up ready 100%"})
	setBody("SLOW")
	expect("backend slow", "api", answer{200, "50%", "probe agent: slow backend", "up ready 50% #probe agent: slow backend"})
	setBody("DRAIN deploy 42")
	expect("backend draining", "api", answer{404, "", "probe agent: DRAIN deploy 42", "up drain #probe agent: DRAIN deploy 42"})
	setBody("ERROR 500")
	expect("backend failing", "api", answer{503, "", "probe agent: down: backend says: ERROR 500", "down ready #probe agent: down: backend says: ERROR 500"})
	// Read by its exit code only, the same script passes while it prints
	// "down": what output = "agent" is for.
	expect("exit code only", "legacy", answer{200, "", "", "up ready 100%"})
	backend.Close()
	stopped = true
	expect("backend gone", "api", answer{503, "", "probe agent: down: backend unreachable", "down ready #probe agent: down: backend unreachable"})

	if logs := d.stderr.String(); !strings.Contains(logs, "api.8080/agent drain: drain #DRAIN deploy 42") {
		t.Errorf("the log lacks the drain transition:\n%s", logs)
	}
}
