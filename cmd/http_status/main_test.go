//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/daemon"
	"github.com/http-status/http_status/internal/testbin"
	"github.com/http-status/http_status/internal/testenv"
)

// proc is a running http_status process.
type proc struct {
	cmd  *exec.Cmd
	base string
	out  *bytes.Buffer
	done chan error
}

// runDaemon runs the binary with args plus a free port, and waits until it
// answers.
func runDaemon(t *testing.T, args ...string) *proc {
	t.Helper()
	port := testenv.FreePort(t)
	args = append([]string{"-p", fmt.Sprint(port), "--log-format", "json"}, args...)
	d := &proc{cmd: exec.Command(testBinary(t), args...), base: fmt.Sprintf("http://127.0.0.1:%d", port), out: &bytes.Buffer{}, done: make(chan error, 1)}
	d.cmd.Env = cleanEnv()
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	testenv.DieWithTest(d.cmd)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.out)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(d.base + "/status")
		if err == nil {
			res.Body.Close()
			return d
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("daemon exited early: %v\n%s", err, d.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not answering: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *proc) get(t *testing.T, q string) (int, string) {
	t.Helper()
	res, err := http.Get(d.base + q)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitCode polls q until it answers code.
func (d *proc) waitCode(t *testing.T, q string, code int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, body := d.get(t, q)
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d %q, want %d", q, got, body, code)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (d *proc) stop(t *testing.T) error {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop on SIGTERM")
		return nil
	}
}

// TestEndToEnd runs the real binary against a temp dir, as an operator
// would, with each HTTP engine.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{daemon.EngineFast, daemon.EngineNetHTTP} {
		t.Run(strings.ReplaceAll(engine, "/", "_"), func(t *testing.T) { testEndToEnd(t, engine) })
	}
}

func testEndToEnd(t *testing.T, engine string) {
	dir := filepath.Join(t.TempDir(), "flags")
	d := runDaemon(t, "--dir", dir, "--engine", engine)

	if code, body := d.get(t, "/status"); code != 404 || !strings.Contains(body, "Service not available") {
		t.Fatalf("no flag: %d %q", code, body)
	}
	if err := os.WriteFile(filepath.Join(dir, "status.html"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d.waitCode(t, "/status", 200)
	if err := os.WriteFile(filepath.Join(dir, "squid.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	body := d.waitCode(t, "/status?SERVICE=squid&PORT=80&VIP=127.0.0.1", 200)
	if body != "OK - service and VIP all fine!\n" {
		t.Fatalf("body %q", body)
	}
	if code, _ := d.get(t, "/status?SERVICE=squid&PORT=80&VIP=192.0.2.254"); code != 404 {
		t.Fatalf("absent VIP: %d", code)
	}
	if code, _ := d.get(t, "/status?SERVICE=../../etc/passwd"); code != 400 {
		t.Fatalf("traversal: %d", code)
	}
	if err := os.WriteFile(filepath.Join(dir, "squid.80"), []byte("drain # deploy 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if body := d.waitCode(t, "/status?SERVICE=squid&PORT=80", 404); !strings.Contains(body, "deploy 7") {
		t.Fatalf("drain body %q", body)
	}
	if err := os.Remove(filepath.Join(dir, "status.html")); err != nil {
		t.Fatal(err)
	}
	d.waitCode(t, "/status", 404)
	// Pages are served on the same port whichever engine answers /status.
	if code, body := d.get(t, "/status.txt"); code != 200 || !strings.Contains(body, "squid.80") {
		t.Fatalf("/status.txt with engine %s: %d %q", engine, code, body)
	}
	// A browser at / gets the index, with the binary's version; anything
	// else at / keeps the plain 404.
	req, _ := http.NewRequest("GET", d.base+"/", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(string(b), `<a href="/board">`) || !strings.Contains(html.UnescapeString(string(b)), "http_status "+testbin.Version+" (commit "+testbin.Commit) {
		t.Fatalf("GET / from a browser with engine %s: %d %q\n%s", engine, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	if code, body := d.get(t, "/"); code != 404 || !strings.HasPrefix(body, "Not Found - unknown path") {
		t.Fatalf("GET / without Accept: text/html with engine %s: %d %q", engine, code, body)
	}

	if err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if !strings.Contains(d.out.String(), `"message":"squid.80 drain"`) {
		t.Errorf("state change not logged:\n%s", d.out)
	}
}

func TestFlagErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--port", "70000"},
		{"--ip", "not-an-ip"},
		{"--log-level", "loud"},
		{"--engine", "nginx"},
		{"--bogus"},
		{"extra-arg"},
	} {
		cmd := exec.Command(testBinary(t), args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: err %v, want exit 2; output %s", args, err, out)
		}
	}
	out, err := exec.Command(testBinary(t), "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--dir") && !strings.Contains(string(out), "-dir") {
		t.Errorf("--help: %v %s", err, out)
	}
}

// TestFlagErrorOnce: a bad flag value is said once, with a pointer to
// --help; the flag package used to print it with the whole usage and
// realMain printed it again, so the error sat in the middle of 70 lines.
// --help still prints the usage.
func TestFlagErrorOnce(t *testing.T) {
	var out, errb bytes.Buffer
	code := realMain([]string{"-p", "010"}, &out, &errb)
	msg := errb.String()
	if code != 2 || strings.Count(msg, `invalid value "010"`) != 1 || strings.Contains(msg, "Flags (both") || !strings.Contains(msg, "see --help") || strings.Count(msg, "\n") != 1 {
		t.Errorf("-p 010: exit %d, stderr %q; want 2 and one line naming the value and --help", code, msg)
	}
	errb.Reset()
	if code := realMain([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "Flags (both") || !strings.Contains(errb.String(), "-pidfile file") {
		t.Errorf("--help: exit %d, stderr %q; want 0 and the usage", code, errb.String())
	}
}

// TestMisplacedCommand: a control command after a flag used to get
// "unexpected argument" with no hint that it must come first.
func TestMisplacedCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := realMain([]string{"--dir", t.TempDir(), "drain", "squid"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "put it first") {
		t.Errorf("--dir DIR drain squid: exit %d, stderr %q; want 2 and how to write it", code, errb.String())
	}
	errb.Reset()
	if code := realMain([]string{"status"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "not a command (activate,") {
		t.Errorf("status: exit %d, stderr %q; want 2 and the commands", code, errb.String())
	}
}

// TestAgentDefaultValidated: a bad --agent-default is a usage error at
// once. It used to be accepted, and fail (exit 1) only once an agent
// listener started, with --agent-port or a systemd socket named agent.
func TestAgentDefaultValidated(t *testing.T) {
	for _, args := range [][]string{{"--agent-default", "../x"}, {"--agent-port", "8002", "--agent-default", "a b"}} {
		if _, err := parseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), "--agent-default") {
			t.Errorf("%v: err %v, want a refusal naming --agent-default", args, err)
		}
	}
	if _, err := parseFlags([]string{"--agent-default", "squid.80"}, io.Discard); err != nil {
		t.Error(err)
	}
}

// TestAgentFlagsWithoutAgent: --agent-ip without --agent-port turns
// nothing on; the daemon used to start without a word about it.
func TestAgentFlagsWithoutAgent(t *testing.T) {
	t.Parallel()
	p := startDaemon(t, nil, "--dir", t.TempDir(), "--port", "0", "--vips=false", "--log-format=json", "--agent-ip", "127.0.0.1")
	waitOutput(t, "the warning", p.stderr, "the agent check is off (turn it on with --agent-port")
}

// TestNumericFlagsDecimal: numbers on the command line are decimal. With the
// flag package's IntVar "--agent-port 010" listened on port 8 and
// "-p 0x1f41" on 8001.
func TestNumericFlagsDecimal(t *testing.T) {
	for _, args := range [][]string{
		{"--port", "010"},
		{"-p", "0x1f41"},
		{"--agent-port", "010"},
		{"--probe-concurrency", "010"},
		{"--vip-missing-status", "0x1f7"},
		{"-p", "+80"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), "decimal") {
			t.Errorf("%v: err %v, want a refusal that asks for a decimal number", args, err)
		}
	}
	cfg, err := parseFlags([]string{"-p", "0", "--agent-port", "10", "--probe-concurrency", "8"}, io.Discard)
	if err != nil || cfg.Port != 0 || cfg.AgentPort != 10 || cfg.ProbeConcurrency != 8 {
		t.Fatalf("cfg = %+v, %v", cfg, err)
	}
}

func TestOriginalFlagsAccepted(t *testing.T) {
	cfg, err := parseFlags([]string{"-p", "9000", "-i", "0.0.0.0", "--pidfile", "/run/x.pid"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 9000 || cfg.IP != "0.0.0.0" || cfg.PidFile != "/run/x.pid" {
		t.Fatalf("cfg = %+v", cfg)
	}
	cfg, err = parseFlags([]string{"--port=8002", "--ip=::1"}, io.Discard)
	if err != nil || cfg.Port != 8002 || cfg.Addr() != "[::1]:8002" {
		t.Fatalf("cfg = %+v, %v", cfg, err)
	}
	cfg, err = parseFlags(nil, io.Discard)
	if err != nil || cfg.Port != 8001 || cfg.IP != "127.0.0.1" || cfg.Dir != DefaultDir {
		t.Fatalf("defaults = %+v, %v", cfg, err)
	}
}
