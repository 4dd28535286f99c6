//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/cdptest"
	"github.com/http-status/http_status/internal/pages"
	"github.com/http-status/http_status/internal/testenv"
)

// viewCode is the /status code for an effective state word.
var viewCode = map[string]int{"up": 200, "drain": 404, "maint": 503, "down": 503, "missing": 404}

// viewAgent is how the agent's reply starts for an effective state word.
var viewAgent = map[string]string{"up": "up ready", "drain": "up drain", "maint": "maint", "down": "down ready", "missing": "down ready"}

// viewSet is what every view says about one service, read between two
// answers of /status and the agent that agree.
type viewSet struct {
	code              int
	agent             string
	json, txt, board  string
	metrics, list     string
	jsonCode, txtCode int
}

// viewReader reads every view of a running daemon.
type viewReader struct {
	t         *testing.T
	base, dir string
	agentPort int
	c         *http.Client
}

func (r *viewReader) body(path string) string {
	r.t.Helper()
	res, err := r.c.Get(r.base + path)
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		r.t.Fatalf("GET %s: %d %v", path, res.StatusCode, err)
	}
	return string(b)
}

func (r *viewReader) status(q string) int {
	r.t.Helper()
	res, err := r.c.Get(r.base + "/status?" + q)
	if err != nil {
		r.t.Fatalf("GET /status?%s: %v", q, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// read reads every view of the flags names (SERVICE.PORT): each page and
// list once for all of them, between two rounds of /status and agent
// answers, retrying while an answer changed during the reading (a hold or
// an expiry ending meanwhile).
func (r *viewReader) read(names ...string) map[string]viewSet {
	r.t.Helper()
	answers := func() map[string]viewSet {
		m := make(map[string]viewSet, len(names))
		for _, name := range names {
			svc, port, _ := strings.Cut(name, ".")
			m[name] = viewSet{code: r.status("SERVICE=" + svc + "&PORT=" + port),
				agent: strings.TrimSpace(agentAsk(r.t, r.agentPort, name+"\n"))}
		}
		return m
	}
	for try := 0; ; try++ {
		vs := answers()
		var doc pages.StatusJSON
		if err := json.Unmarshal([]byte(r.body("/status.json")), &doc); err != nil {
			r.t.Fatalf("/status.json: %v", err)
		}
		txt, board, metrics := r.body("/status.txt"), r.body("/board"), r.body("/metrics")
		out, err := exec.Command(testBinary(r.t), "list", "--dir", r.dir).CombinedOutput()
		if err != nil {
			r.t.Fatalf("list: %v\n%s", err, out)
		}
		for _, name := range names {
			v := vs[name]
			v.json = "missing"
			for _, s := range doc.Services {
				if s.Name == name {
					v.json, v.jsonCode = s.Effective, s.Code
				}
			}
			v.txt = "missing"
			if m := regexp.MustCompile(`(?m)^ +\d+ ` + regexp.QuoteMeta(name) + ` (\w+) code (\d+) `).FindStringSubmatch(txt); m != nil {
				v.txt = m[1]
				v.txtCode, _ = strconv.Atoi(m[2])
			}
			v.board = "missing"
			if m := regexp.MustCompile(`data-service="` + regexp.QuoteMeta(name) + `" data-state="(\w+)"`).FindStringSubmatch(board); m != nil {
				v.board = m[1]
			}
			v.metrics = "missing"
			if m := regexp.MustCompile(`(?m)^http_status_service_state\{service="` + regexp.QuoteMeta(name) + `",state="(\w+)"\} 1$`).FindStringSubmatch(metrics); m != nil {
				v.metrics = m[1]
			}
			v.list = "missing"
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == name {
					v.list = f[1]
				}
			}
			vs[name] = v
		}
		again, same := answers(), true
		for _, name := range names {
			if again[name].code != vs[name].code || again[name].agent != vs[name].agent {
				same = false
				if try == 5 {
					r.t.Fatalf("%s: /status and the agent keep changing: %d %q, then %d %q", name, vs[name].code, vs[name].agent, again[name].code, again[name].agent)
				}
			}
		}
		if same {
			return vs
		}
	}
}

// check fails unless every view says want, /status answers its code and
// the agent its reply. list reads the files itself (no probes, no holds,
// no staleness: README "Control command"), so it is checked against
// listWant.
func (r *viewReader) check(what, name, want, listWant string) viewSet {
	r.t.Helper()
	v := r.read(name)[name]
	r.verify(what, name, v, want, listWant)
	return v
}

func (r *viewReader) verify(what, name string, v viewSet, want, listWant string) {
	r.t.Helper()
	if v.code != viewCode[want] || !strings.HasPrefix(v.agent, viewAgent[want]) {
		r.t.Errorf("%s: %s: /status %d, agent %q; want %s: %d, %q", what, name, v.code, v.agent, want, viewCode[want], viewAgent[want])
	}
	for view, got := range map[string]string{"/status.json": v.json, "/status.txt": v.txt, "/board": v.board, "/metrics": v.metrics} {
		if got != want {
			r.t.Errorf("%s: %s: %s says %s while /status answers %d and the agent %q (want %s)", what, name, view, got, v.code, v.agent, want)
		}
	}
	if want != "missing" && (v.jsonCode != v.code || v.txtCode != v.code) {
		r.t.Errorf("%s: %s: code in /status.json %d, /status.txt %d, /status answers %d", what, name, v.jsonCode, v.txtCode, v.code)
	}
	if v.list != listWant {
		r.t.Errorf("%s: %s: list says %s, want %s", what, name, v.list, listWant)
	}
}

// TestViewsAgree puts a flag in each state a flag can be in and checks
// that every view an operator reads (/status.json, /status.txt, /board,
// /metrics, list) says what /status and the agent answer the balancer,
// against the real binary.
func TestViewsAgree(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "flags")
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	writeFlags(t, dir, map[string]string{
		"up.80":        "",
		"upword.80":    "up # fine",
		"drain.80":     "drain # deploy 7",
		"maint.80":     "maint # kernel",
		"down.80":      "down # broken",
		"weight.80":    "up 50%",
		"dweight.80":   "drain 25%",
		"future.80":    "maint until=" + future + " # window",
		"past.80":      "drain until=" + past + " # forgotten",
		"badweight.80": "drain 300% # fat finger",
		"noword.80":    "<html>ok</html>",
		"appended.80":  "up\ndrain\n",
		"held.80":      "drain # emptied",
		"half.80":      "down # half",
		"probed.80":    "",
		"expiring.80":  "",
	})
	conf := filepath.Join(tmp, "probes.toml")
	// Port 1 on loopback refuses: the probe fails from its first attempt.
	if err := os.WriteFile(conf, []byte("[[probe]]\nservice = \"probed.80\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1\ninitial = \"down\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port, agentPort := testenv.FreePort(t), testenv.FreePort(t)
	d := startDaemon(t, nil, "--dir", dir, "--port", strconv.Itoa(port), "--agent-port", strconv.Itoa(agentPort),
		"--config", conf, "--lameduck=4s", "--log-format=json")
	r := &viewReader{t: t, base: waitServing(t, d, port), dir: dir, agentPort: agentPort,
		c: &http.Client{Timeout: 10 * time.Second}}
	answers(t, r.base+"/status?SERVICE=probed&PORT=80", 503, "probe holds probed.80 down")

	steady := []struct{ name, want, list string }{
		{"up.80", "up", "up"},
		{"upword.80", "up", "up"},
		{"drain.80", "drain", "drain"},
		{"maint.80", "maint", "maint"},
		{"down.80", "down", "down"},
		{"weight.80", "up", "up"},
		{"dweight.80", "drain", "drain"},
		{"future.80", "maint", "maint"},
		{"past.80", "up", "up"},
		{"badweight.80", "drain", "drain"},
		{"noword.80", "up", "up"},
		{"appended.80", "drain", "drain"},
		{"probed.80", "down", "up"},
		{"absent.80", "missing", "missing"},
	}
	var names []string
	for _, c := range steady {
		names = append(names, c.name)
	}
	vs := r.read(names...)
	for _, c := range steady {
		r.verify("steady", c.name, vs[c.name], c.want, c.list)
	}
	if v := vs["weight.80"]; v.agent != "up ready 50%" {
		t.Errorf("weight.80: agent %q, want up ready 50%%", v.agent)
	}
	// A VIP missing from the host: /status answers 404 whatever the
	// flag; the views show the flag's state (documented: the code before
	// any VIP check) and the VIP list, which lacks it.
	const noVIP = "192.0.2.77"
	if code := r.status("SERVICE=up&PORT=80&VIP=" + noVIP); code != 404 {
		t.Errorf("VIP=%s not on the host: /status %d, want 404", noVIP, code)
	}
	if got := agentAsk(t, agentPort, "SERVICE=up&PORT=80&VIP="+noVIP+"\n"); !strings.HasPrefix(got, "down ready #VIP not configured") {
		t.Errorf("agent with a missing VIP = %q", got)
	}
	if b := r.body("/status.json"); strings.Contains(b, noVIP) {
		t.Errorf("/status.json lists %s, which the host lacks", noVIP)
	}

	// Held: an out-of-rotation flag emptied (as `>` does before it
	// writes) keeps its state for its settle time, and every view with it.
	// half.80: `dr` over down, a writer's passing state, holds down.
	if err := os.Truncate(filepath.Join(dir, "held.80"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "half.80"), []byte("dr"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, held, list string }{{"held.80", "drain", "up"}, {"half.80", "down", "up"}} {
		v := r.read(c.name)[c.name]
		want := c.held
		if v.code == 200 {
			want = "up" // the hold ended before the reading: all must say up
		}
		r.verify("held", c.name, v, want, c.list)
		// The hold lasts 500 ms from the truncation (README "Flag files");
		// the answer is due settleWithin after that.
		answersWithin(t, r.base+"/status?SERVICE="+strings.TrimSuffix(c.name, ".80")+"&PORT=80", 200, c.name+" after its hold", 500*time.Millisecond+settleWithin)
		r.check("after the hold", c.name, "up", "up")
	}

	// An expiry passing while an /events stream is open: the change event
	// must come when /status switches, not at the next file event.
	until := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	writeFlags(t, dir, map[string]string{"expiring.80": "drain until=" + strconv.FormatInt(until.Unix(), 10) + "\n"})
	answers(t, r.base+"/status?SERVICE=expiring&PORT=80", 404, "expiring.80 drained")
	ev := openEvents(t, r.base)
	r.check("before the expiry", "expiring.80", "drain", "drain")
	got := make(chan time.Time, 1)
	go func() {
		for {
			var c pages.ChangeJSON
			name, data, ok := ev.next()
			if !ok {
				close(got)
				return
			}
			if name == "change" && json.Unmarshal([]byte(data), &c) == nil && c.Name == "expiring.80" && c.Effective == "up" {
				got <- time.Now()
				return
			}
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); r.status("SERVICE=expiring&PORT=80") != 200; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("expiring.80 still out 10 s after its until= %s", until)
		}
	}
	switched := time.Now()
	if early := until.Sub(switched); early > 0 {
		t.Errorf("/status answered 200 %s before the until= instant", early)
	}
	select {
	case at, ok := <-got:
		if !ok {
			t.Fatal("/events ended before the expiry's change")
		}
		if lag := at.Sub(switched); lag > time.Second {
			t.Errorf("/events said expiring.80 up %s after /status did", lag)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change event for the expiry within 10 s of /status answering 200")
	}
	r.check("after the expiry", "expiring.80", "up", "up")

	// Stopping: in the lameduck the agent answers drain for services
	// that are up, and /status still follows the flags; the views must
	// say the daemon is stopping.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); !strings.HasPrefix(agentAsk(t, agentPort, "up.80\n"), "up drain"); {
		if time.Now().After(deadline) {
			t.Fatal("agent never answered drain in the lameduck")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, page := range []string{"/status.json", "/status.txt", "/board", "/healthz"} {
		if b := r.body(page); !strings.Contains(b, "the agent answers drain") {
			t.Errorf("%s in the lameduck does not say the agent answers drain", page)
		}
	}
	if b := r.body("/metrics"); !strings.Contains(b, "\nhttp_status_stopping 1\n") {
		t.Errorf("/metrics in the lameduck lacks http_status_stopping 1")
	}
}

// eventReader reads Server-Sent Events from one /events stream.
type eventReader struct {
	sc        *bufio.Scanner
	dataLines int // data lines of the last event
}

func openEvents(t *testing.T, base string) *eventReader {
	t.Helper()
	res, err := http.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 {
		t.Fatalf("/events: %d", res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	return &eventReader{sc: sc}
}

// next returns the next event's name and data.
func (e *eventReader) next() (name, data string, ok bool) {
	e.dataLines = 0
	for e.sc.Scan() {
		line := e.sc.Text()
		switch {
		case line == "":
			if name != "" || data != "" {
				return name, data, true
			}
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data += line[len("data: "):]
			e.dataLines++
		}
	}
	return "", "", false
}

// TestViewsEscaping writes flags whose reasons and names are hostile (HTML,
// quotes, backslashes, control bytes, invalid UTF-8, a newline, a very long
// line, a name at the length limit) and checks that every view stays well
// formed: /status.json parses, /status.txt keeps one line per service,
// /metrics parses with Prometheus' own text parser, each /events change is
// one data line, the board (in headless Chromium, rendered by the server
// and rewritten live by its script) shows the text as text, and list
// prints no control byte.
func TestViewsEscaping(t *testing.T) {
	t.Parallel()
	browser := cdptest.Start(t)
	dir := filepath.Join(t.TempDir(), "flags")
	const xss = `<script>window.pwned=1</script> "q" \back <img src=x onerror="window.pwned=2"> </td></tr>`
	longName := strings.Repeat("n", cache.MaxNameLen-5) + ".8080"
	hostile := map[string]string{
		"xss.80":  "drain # " + xss + "\n",
		"ctl.80":  "drain # ctl \x1b[31mred\x07 \x01 nul\x00x \x7f del\n",
		"esc.80":  "\x1b]0;title\x07drain \x1b[2J # word\n",
		"utf.80":  "drain # bad \xff\xfe utf8 \xc3\n",
		"nl.80":   "drain # line1\nline2 </script>\n",
		"long.80": "drain # " + strings.Repeat("A", 5000) + "\n",
		longName:  "maint # long name\n",
	}
	flags := map[string]string{"live.80": ""}
	for k, v := range hostile {
		flags[k] = v
	}
	writeFlags(t, dir, flags)
	port := testenv.FreePort(t)
	agentPort := testenv.FreePort(t)
	d := startDaemon(t, nil, "--dir", dir, "--port", strconv.Itoa(port), "--agent-port", strconv.Itoa(agentPort), "--vips=false", "--log-format=json")
	r := &viewReader{t: t, base: waitServing(t, d, port), dir: dir, agentPort: agentPort, c: &http.Client{Timeout: 10 * time.Second}}
	n := len(flags)

	browser.Open(r.base + "/board?refresh=0")
	browser.WaitEval("the board subscribes to /events", `document.body.dataset.live`, `"1"`)
	ev := openEvents(t, r.base)
	// live.80 turns hostile while the board is open: its script renders it.
	writeFlags(t, dir, map[string]string{"live.80": "drain # " + xss + "\n"})
	for {
		name, data, ok := ev.next()
		if !ok {
			t.Fatal("/events ended before live.80's change")
		}
		if ev.dataLines != 1 {
			t.Fatalf("/events %s event with %d data lines: %q", name, ev.dataLines, data)
		}
		var c pages.ChangeJSON
		if name == "change" {
			if err := json.Unmarshal([]byte(data), &c); err != nil {
				t.Fatalf("/events change data: %v: %q", err, data)
			}
			if c.Name == "live.80" {
				if c.Reason != xss {
					t.Errorf("/events live.80 reason %q, want %q", c.Reason, xss)
				}
				break
			}
		}
	}

	// /status.json: valid, every reason and invalid text printable UTF-8.
	var doc pages.StatusJSON
	body := r.body("/status.json")
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/status.json: %v", err)
	}
	if len(doc.Services) != n {
		t.Fatalf("/status.json has %d services, want %d", len(doc.Services), n)
	}
	reasons := map[string]string{}
	for _, s := range doc.Services {
		reasons[s.Name] = s.Reason
		for _, txt := range []string{s.Reason, s.Invalid} {
			if !printable(txt) {
				t.Errorf("/status.json %s: %q is not printable UTF-8", s.Name, txt)
			}
		}
		if len(s.Reason) > 200 {
			t.Errorf("/status.json %s: reason of %d bytes, the limit is 200", s.Name, len(s.Reason))
		}
	}
	if reasons["xss.80"] != xss || reasons[longName] != "long name" {
		t.Errorf("/status.json reasons: xss.80 %q, long name %q", reasons["xss.80"], reasons[longName])
	}

	// /status.txt: a summary line, one line per service, the VIP count.
	txt := strings.Split(strings.TrimSuffix(r.body("/status.txt"), "\n"), "\n")
	if len(txt) != n+2 {
		t.Fatalf("/status.txt has %d lines for %d services:\n%s", len(txt), n, strings.Join(txt, "\n"))
	}
	line := regexp.MustCompile(`^ +\d+ (\S+) (up|drain|maint|down) code \d+( conns \d+)? since \S+( invalid "(?:[^"\\]|\\.)*")?( reason "(?:[^"\\]|\\.)*")?$`)
	for _, l := range txt[1 : n+1] {
		m := line.FindStringSubmatch(l)
		if m == nil || !printable(l) {
			t.Errorf("/status.txt line not well formed: %q", l)
			continue
		}
		if m[5] != "" {
			if got, err := strconv.Unquote(m[5][len(" reason "):]); err != nil || got != reasons[m[1]] {
				t.Errorf("/status.txt %s: reason %s unquotes to %q (%v), /status.json says %q", m[1], m[5], got, err, reasons[m[1]])
			}
		}
	}

	// /metrics: Prometheus' parser takes it, with a series per service.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(r.body("/metrics")))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	seen := map[string]bool{}
	for _, m := range fams["http_status_service_state"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "service" {
				seen[l.GetValue()] = true
			}
		}
	}
	if len(seen) != n || !seen[longName] {
		t.Errorf("/metrics http_status_service_state has %d services (long name %v), want %d", len(seen), seen[longName], n)
	}

	// The agent: one line.
	if got := agentAsk(t, agentPort, "xss.80\n"); strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") || !printable(strings.TrimSuffix(got, "\n")) {
		t.Errorf("agent reply for xss.80 = %q, want one printable line", got)
	}

	// list: no control byte reaches the terminal.
	out, err := exec.Command(testBinary(t), "list", "--dir", dir).CombinedOutput()
	if err != nil || !printable(strings.ReplaceAll(string(out), "\n", "")) {
		t.Errorf("list (%v) prints control bytes or invalid UTF-8:\n%q", err, out)
	}

	// The board: the text is text, in the server's rows and in the one
	// the script rewrote; nothing ran.
	cell := func(name string) string {
		return fmt.Sprintf(`(function(){var r=Array.prototype.find.call(document.querySelectorAll("tr[data-service]"),function(r){return r.dataset.service===%q});return r?r.cells[3].firstChild.textContent:null})()`, name)
	}
	want := jsString(xss)
	browser.WaitEval("live.80's row, rewritten by the script, shows the reason as text", cell("live.80"), want)
	browser.WaitEval("xss.80's server-rendered row shows the reason as text", cell("xss.80"), want)
	want = jsString("long name")
	browser.WaitEval("the long name's row", cell(longName), want)
	browser.WaitEval("nothing ran", `typeof window.pwned + "|" + document.querySelectorAll("#services tr[data-service]").length`, fmt.Sprintf(`"undefined|%d"`, n))
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// jsString is s as Runtime.evaluate returns a string: JSON without HTML
// escapes.
func jsString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
