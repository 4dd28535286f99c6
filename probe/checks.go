package probe

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/dockerapi"
)

// checker runs one attempt. It returns a short message on success and an
// error saying what failed otherwise. It must return when ctx is done.
type checker interface {
	check(ctx context.Context) (string, error)
}

// outcome is an attempt's result beyond pass or fail.
type outcome struct {
	msg string
	// state, weight and reason: what a passing script with output =
	// "agent" asked for (state Up otherwise).
	state     cache.State
	weight    int
	hasWeight bool
	reason    string
	// containers a container probe matched, whether it passed or not.
	containers []cache.Container
}

// detailChecker is a checker whose attempts say more than pass or fail;
// the Runner prefers checkDetail when a checker has it.
type detailChecker interface {
	checkDetail(ctx context.Context) (outcome, error)
}

// maxBody bounds how much of a reply is read to look for an expected text.
const maxBody = 64 << 10

func newChecker(s *Spec) (checker, error) {
	if s.Keys == nil {
		return nil, fmt.Errorf("probe: unknown kind %q", s.Kind)
	}
	return s.Keys.checker(&s.Common)
}

// ctxErr turns a deadline into "timeout after ..." and keeps other errors.
func ctxErr(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		if errors.Is(ctx.Err(), context.Canceled) {
			return context.Canceled
		}
		return fmt.Errorf("timeout after %s", timeout)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func deadlineOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d).Round(time.Millisecond)
	}
	return 0
}

// statusOK reports whether code is expected: in want, or 200..399 when want
// is empty.
func statusOK(code int, want []int) bool {
	if len(want) == 0 {
		return code >= 200 && code < 400
	}
	for _, w := range want {
		if code == w {
			return true
		}
	}
	return false
}

func wantStatuses(want []int) string {
	if len(want) == 0 {
		return "200-399"
	}
	s := make([]string, len(want))
	for i, w := range want {
		s[i] = strconv.Itoa(w)
	}
	return strings.Join(s, ",")
}

// --- http ---

type httpCheck struct {
	client   *http.Client
	method   string
	url      string
	host     string
	statuses []int
	body     string
}

func newHTTPCheck(k *HTTPKeys) *httpCheck {
	tr := &http.Transport{
		Proxy:              nil, // never a proxy from the environment
		DisableKeepAlives:  true,
		DisableCompression: true,
		DialContext:        (&net.Dialer{}).DialContext,
	}
	return &httpCheck{
		client: &http.Client{
			Transport: tr,
			// A redirect is an answer to judge, not to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		method:   k.Method,
		url:      "http://" + k.Address + k.Path,
		host:     k.Host,
		statuses: k.ExpectStatus,
		body:     k.ExpectBody,
	}
}

func (h *httpCheck) check(ctx context.Context) (string, error) {
	timeout := deadlineOf(ctx)
	req, err := http.NewRequestWithContext(ctx, h.method, h.url, nil)
	if err != nil {
		return "", err
	}
	if h.host != "" {
		req.Host = h.host
	}
	req.Header.Set("User-Agent", "http_status-probe")
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", ctxErr(ctx, err, timeout)
	}
	defer resp.Body.Close()
	if !statusOK(resp.StatusCode, h.statuses) {
		return "", fmt.Errorf("HTTP %d, want %s", resp.StatusCode, wantStatuses(h.statuses))
	}
	if h.body != "" {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return "", ctxErr(ctx, fmt.Errorf("read body: %w", err), timeout)
		}
		if !bytes.Contains(b, []byte(h.body)) {
			return "", fmt.Errorf("HTTP %d but body lacks %q", resp.StatusCode, h.body)
		}
	}
	return "HTTP " + strconv.Itoa(resp.StatusCode), nil
}

// --- tcp ---

type tcpCheck struct {
	addr, send, expect string
}

func (t *tcpCheck) check(ctx context.Context) (string, error) {
	timeout := deadlineOf(ctx)
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return "", ctxErr(ctx, err, timeout)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if t.send != "" {
		if _, err := io.WriteString(c, t.send); err != nil {
			return "", ctxErr(ctx, fmt.Errorf("send: %w", err), timeout)
		}
	}
	if t.expect == "" {
		return "connected", nil
	}
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	for len(buf) < maxBody {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if bytes.Contains(buf, []byte(t.expect)) {
			return "got " + strconv.Quote(t.expect), nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", fmt.Errorf("connection closed before %q", t.expect)
			}
			return "", ctxErr(ctx, fmt.Errorf("read: %w", err), timeout)
		}
	}
	return "", fmt.Errorf("no %q in the first %d bytes", t.expect, maxBody)
}

// --- container ---

// maxContainers bounds how many containers one attempt inspects.
const maxContainers = 64

type containerCheck struct {
	api    *dockerapi.Client
	name   string // exact name or ID, or
	label  string // key or key=value, or
	prefix string // name prefix
	any    bool   // match = "any": one healthy container is enough
}

func newContainerCheck(k *ContainerKeys) *containerCheck {
	return &containerCheck{
		api:    dockerapi.New(k.Socket),
		name:   k.Container,
		label:  k.Label,
		prefix: k.NamePrefix,
		any:    k.Match == MatchAny,
	}
}

func (c *containerCheck) check(ctx context.Context) (string, error) {
	o, err := c.checkDetail(ctx)
	return o.msg, err
}

func (c *containerCheck) checkDetail(ctx context.Context) (outcome, error) {
	timeout := deadlineOf(ctx)
	if c.name != "" {
		ct, err := c.inspect(ctx, c.name)
		if err != nil {
			return outcome{}, ctxErr(ctx, err, timeout)
		}
		o := outcome{containers: []cache.Container{ct}}
		if !ct.OK {
			return o, errors.New(c.verdict(c.name, ct))
		}
		o.msg = c.verdict("", ct)
		return o, nil
	}
	ids, err := c.list(ctx)
	if err != nil {
		return outcome{}, ctxErr(ctx, err, timeout)
	}
	if len(ids) == 0 {
		return outcome{}, fmt.Errorf("no container %s", c.what())
	}
	if len(ids) > maxContainers {
		return outcome{}, fmt.Errorf("%d containers %s; at most %d are checked: narrow the match", len(ids), c.what(), maxContainers)
	}
	o := outcome{containers: make([]cache.Container, 0, len(ids))}
	healthy := 0
	var bad []string
	for _, id := range ids {
		ct, err := c.inspect(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return outcome{containers: o.containers}, ctxErr(ctx, err, timeout)
			}
			// Removed between the list and the inspect: not healthy.
			ct = cache.Container{Name: id, ID: shortID(id), State: "removed"}
		}
		o.containers = append(o.containers, ct)
		if ct.OK {
			healthy++
		} else {
			bad = append(bad, c.verdict(ct.Name, ct))
		}
	}
	slices.SortFunc(o.containers, func(a, b cache.Container) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(bad)
	want := "all"
	if c.any {
		want = "any"
	}
	summary := fmt.Sprintf("%d/%d containers %s healthy (want %s)", healthy, len(ids), c.what(), want)
	if healthy == len(ids) || (c.any && healthy > 0) {
		o.msg = summary
		return o, nil
	}
	return o, errors.New(summary + ": " + strings.Join(bad, "; "))
}

// what describes the match: `with label "a=b"` or `named "app-*"`.
func (c *containerCheck) what() string {
	if c.label != "" {
		return "with label " + strconv.Quote(c.label)
	}
	return "named " + strconv.Quote(c.prefix+"*")
}

// verdict says how a container is: "running, healthy", or, with a name,
// "container web is exited".
func (c *containerCheck) verdict(name string, ct cache.Container) string {
	var s string
	switch {
	case ct.State != "running":
		s = "is " + orUnknown(ct.State)
	case ct.Health != "" && ct.Health != "healthy":
		s = "is running but " + ct.Health
	case ct.Health == "healthy":
		s = "running, healthy"
	default:
		s = "running"
	}
	if name == "" {
		return s
	}
	if ct.OK {
		return name + " " + s
	}
	return "container " + name + " " + s
}

// list returns the IDs of the containers the label or prefix matches,
// running or not (a stopped match is an unhealthy one, not a missing one).
func (c *containerCheck) list(ctx context.Context) ([]string, error) {
	filters := map[string][]string{}
	if c.label != "" {
		filters["label"] = []string{c.label}
	} else {
		// The engine's name filter matches anywhere in the name; the
		// prefix is checked below.
		filters["name"] = []string{c.prefix}
	}
	list, err := c.api.List(ctx, filters)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range list {
		if c.prefix != "" {
			match := false
			for _, n := range s.Names {
				if strings.HasPrefix(strings.TrimPrefix(n, "/"), c.prefix) {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		ids = append(ids, s.ID)
	}
	return ids, nil
}

// inspect reads one container's state.
func (c *containerCheck) inspect(ctx context.Context, nameOrID string) (cache.Container, error) {
	st, err := c.api.Inspect(ctx, nameOrID)
	if err != nil {
		if errors.Is(err, dockerapi.ErrNotFound) {
			return cache.Container{}, fmt.Errorf("no such container %q", nameOrID)
		}
		return cache.Container{}, err
	}
	ct := cache.Container{Name: strings.TrimPrefix(st.Name, "/"), ID: shortID(st.ID), State: st.State.Status}
	if h := st.State.Health; h != nil && h.Status != "none" {
		ct.Health = h.Status
	}
	ct.OK = ct.State == "running" && (ct.Health == "" || ct.Health == "healthy")
	return ct, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func orUnknown(s string) string {
	if s == "" {
		return "in an unknown state"
	}
	return s
}

// --- exec ---

type execCheck struct {
	argv    []string
	service string
	agent   bool // output = "agent": stdout's first line is HAProxy agent words
}

// killGrace is how long Wait waits for the output pipes once the process
// group was killed (a grandchild holding them open must not hang us).
const killGrace = time.Second

func (e *execCheck) check(ctx context.Context) (string, error) {
	o, err := e.checkDetail(ctx)
	return o.msg, err
}

func (e *execCheck) checkDetail(ctx context.Context) (outcome, error) {
	timeout := deadlineOf(ctx)
	cmd := exec.CommandContext(ctx, e.argv[0], e.argv[1:]...)
	// Its own process group, so a timeout kills the script and everything
	// it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = killGrace
	cmd.Env = append(os.Environ(), "HTTP_STATUS_SERVICE="+e.service)
	cmd.Stdin = nil
	// Both streams in one buffer (the message is the first line of
	// either); with agent output, stdout alone is also kept: the agent
	// words are read there, as xinetd passed stdout to HAProxy.
	var out, stdout limitedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if e.agent {
		cmd.Stdout = io.MultiWriter(&out, &stdout)
	}
	err := cmd.Run()
	// Whatever happened, no one of the group may outlive the attempt.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	line := firstLine(out.Bytes())
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return outcome{}, context.Canceled
		}
		return outcome{}, fmt.Errorf("timeout after %s; process group killed", timeout)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg := "exit " + strconv.Itoa(ee.ExitCode())
			if ee.ExitCode() < 0 {
				msg = ee.ProcessState.String()
			}
			if line != "" {
				msg += ": " + line
			}
			return outcome{}, errors.New(msg)
		}
		return outcome{}, fmt.Errorf("run %s: %w", e.argv[0], err)
	}
	if e.agent {
		return agentOutcome(firstLine(stdout.Bytes()))
	}
	if line == "" {
		line = "exit 0"
	}
	return outcome{msg: line, state: cache.Up}, nil
}

// limitedBuffer keeps the first 4 KiB written and discards the rest (so a
// chatty script never blocks on a full pipe).
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) Bytes() []byte { return l.b }

func firstLine(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			return s
		}
	}
	return ""
}
