//go:build linux

// Package cdptest drives a headless Chromium for the board tests: enough
// of the DevTools protocol to open a page, evaluate expressions and take
// screenshots. Only tests import it.
package cdptest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/testenv"
)

// Browser drives a headless Chromium through the DevTools protocol over
// --remote-debugging-pipe: JSON messages ending in a NUL byte, written to
// the browser's fd 3 and read from its fd 4. No WebSocket, no library:
// enough to open a page, evaluate expressions and take screenshots.
type Browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	w       *os.File
	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpReply
	session string
	done    chan struct{}
	stderr  *testenv.LogBuffer
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// Start starts headless Chromium with the flags the board tests use, a new
// empty profile, and the DevTools pipe, for the length of the test; it
// skips without Chromium.
func Start(t *testing.T) *Browser {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (apt-get install chromium): skipping the live board test")
	}
	profile := t.TempDir()
	toBrowser, ourEnd, err := os.Pipe() // browser reads fd 3
	if err != nil {
		t.Fatal(err)
	}
	fromBrowser, browserEnd, err := os.Pipe() // browser writes fd 4
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--window-size=1024,768", "--remote-debugging-pipe", "about:blank")
	cmd.Env = append(cleanEnv(), "HOME="+profile)
	cmd.ExtraFiles = []*os.File{toBrowser, browserEnd}
	c := &Browser{t: t, cmd: cmd, w: ourEnd, pending: map[int]chan cdpReply{}, done: make(chan struct{}), stderr: &testenv.LogBuffer{}}
	cmd.Stderr = c.stderr
	testenv.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	toBrowser.Close()
	browserEnd.Close()
	go c.read(fromBrowser)
	t.Cleanup(func() {
		_ = ourEnd.Close() // the browser exits when its pipe closes
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", c.stderr.String())
		}
	})
	return c
}

func (c *Browser) read(r *os.File) {
	defer close(c.done)
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			c.mu.Lock()
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		var m struct {
			ID int `json:"id"`
			cdpReply
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == 0 {
			continue // an event
		}
		c.mu.Lock()
		ch := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m.cdpReply
		}
	}
}

// Call sends one command (to the attached page, once there is one) and
// decodes its result into out.
func (c *Browser) Call(method string, params any, out any) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpReply, 1)
	c.pending[id] = ch
	msg := map[string]any{"id": id, "method": method, "params": params}
	if c.session != "" && !strings.HasPrefix(method, "Target.") {
		msg["sessionId"] = c.session
	}
	c.mu.Unlock()
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := c.w.Write(append(b, 0)); err != nil {
		return fmt.Errorf("cdp %s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return fmt.Errorf("cdp %s: browser gone", method)
		}
		if r.Error != nil {
			return fmt.Errorf("cdp %s: %s", method, r.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("cdp %s: no answer in 30 s", method)
	}
}

// Open makes a page at url and attaches to it.
func (c *Browser) Open(url string) {
	c.t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := c.Call("Target.createTarget", map[string]any{"url": url}, &target); err != nil {
		c.t.Fatal(err)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.Call("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.session = att.SessionID
	c.mu.Unlock()
}

// Eval evaluates a JavaScript expression in the page and returns its value
// as JSON.
func (c *Browser) Eval(expr string) (json.RawMessage, error) {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := c.Call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return nil, err
	}
	if r.Exception != nil {
		return nil, errors.New("javascript: " + r.Exception.Text)
	}
	return r.Result.Value, nil
}

// WaitEval polls expr until it yields want (compared as JSON), for up to
// 60 s. The bound is for a stuck page, not a measure of speed: on one core
// busy with other work, Chromium took over 15 s to load a board of 1,050
// services after Open.
func (c *Browser) WaitEval(what, expr, want string) {
	c.t.Helper()
	testenv.PollUntil(c.t, what, 60*time.Second, func() (bool, string) {
		v, err := c.Eval(expr)
		if err != nil {
			return false, err.Error()
		}
		return string(v) == want, string(v)
	})
}

// Screenshot saves a PNG of the page to path and returns it.
func (c *Browser) Screenshot(path string) []byte {
	c.t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	if err := c.Call("Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		c.t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		c.t.Fatal(err)
	}
	return b
}

// cleanEnv is the test's environment without the systemd variables a test
// run under systemd would leak into the browser.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM":
			continue
		}
		env = append(env, kv)
	}
	return env
}
