package probe

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/http-status/http_status/internal/probecheck"
)

// Keys are the keys of one kind of probe: *HTTPKeys, *TCPKeys,
// *FastCGIKeys, *ContainerKeys or *ExecKeys. A [[probe]] table is decoded
// into [Common] and the struct of its kind, so a key is declared once, as a
// field with a toml tag, and a key of another kind is refused by the
// decoder.
type Keys interface {
	// check validates the keys and fills in their defaults; c is the
	// probe's common keys (an address may default from the service name).
	check(c *Common) []string
	// checker builds what runs the attempts of a checked probe.
	checker(c *Common) (checker, error)
}

// checker runs one attempt: a [kindChecker], or a test's stand-in. It
// returns an error saying what failed, or what the attempt found. It must
// return when ctx is done.
type checker interface {
	check(ctx context.Context) (outcome, error)
}

// outcome is an attempt's result beyond pass or fail: what the kind
// found, and what a passing script with output = "agent" asked for (state
// Up otherwise).
type outcome struct {
	probecheck.Outcome
	agentReply
}

// kindChecker runs a kind's attempts (internal/probecheck); with agent,
// a script's stdout is read as agent words.
type kindChecker struct {
	probecheck.Checker
	agent bool
}

func (k kindChecker) check(ctx context.Context) (outcome, error) {
	o, err := k.Check(ctx)
	if err == nil && k.agent {
		return agentOutcome(o.Stdout)
	}
	return outcome{Outcome: o}, err
}

func newChecker(s *Spec) (checker, error) {
	if s.Keys == nil {
		return nil, fmt.Errorf("probe: unknown kind %q", s.Kind)
	}
	return s.Keys.checker(&s.Common)
}

// kinds lists every kind, in the order messages name them.
var kinds = []struct {
	name string
	new  func() Keys
}{
	{KindHTTP, func() Keys { return new(HTTPKeys) }},
	{KindTCP, func() Keys { return new(TCPKeys) }},
	{KindFastCGI, func() Keys { return new(FastCGIKeys) }},
	{KindContainer, func() Keys { return new(ContainerKeys) }},
	{KindExec, func() Keys { return new(ExecKeys) }},
}

// newKeys returns the empty keys of kind, or nil for an unknown kind.
func newKeys(kind string) Keys {
	for _, k := range kinds {
		if k.name == kind {
			return k.new()
		}
	}
	return nil
}

// kindNames is "http, tcp, fastcgi, container or exec".
func kindNames() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name
	}
	return orList(names)
}

// kindsWithKey lists the kinds that have key.
func kindsWithKey(key string) []string {
	var out []string
	for _, k := range kinds {
		if slices.Contains(keysOf(reflect.TypeOf(k.new()).Elem()), key) {
			out = append(out, k.name)
		}
	}
	return out
}

// keysOf lists the TOML keys of a struct type: its fields' toml tags, an
// embedded struct's keys in its place. It reads the same declarations the
// decoder does, so that messages and tests never need a list of their own.
func keysOf(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, keysOf(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.IsExported() && name != "-" {
			if name == "" {
				name = f.Name // what go-toml matches without a tag
			}
			out = append(out, name)
		}
	}
	return out
}

func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// HTTPKeys are an http probe's own keys.
type HTTPKeys struct {
	Address      string `toml:"address"`
	Method       string `toml:"method"`
	Path         string `toml:"path"`
	Host         string `toml:"host"`
	ExpectStatus []int  `toml:"expect_status"`
	ExpectBody   string `toml:"expect_body"`
}

func (k *HTTPKeys) check(c *Common) []string {
	msgs := checkExpect(nil, k.ExpectBody)
	msgs = checkStatuses(msgs, k.ExpectStatus)
	msgs = checkHostPort(msgs, &k.Address, c)
	if k.Method == "" {
		k.Method = defaultHTTPMethod
	}
	if !probecheck.ValidMethod(k.Method) {
		msgs = append(msgs, fmt.Sprintf("method %q: not an HTTP method", k.Method))
	}
	if k.Path == "" {
		k.Path = defaultHTTPPath
	}
	if !strings.HasPrefix(k.Path, "/") || strings.ContainsAny(k.Path, " \r\n") {
		msgs = append(msgs, fmt.Sprintf("path %q: want an absolute path without spaces", k.Path))
	}
	if strings.ContainsAny(k.Host, " \r\n/") {
		msgs = append(msgs, fmt.Sprintf("host %q: not a host name", k.Host))
	}
	return msgs
}

func (k *HTTPKeys) checker(*Common) (checker, error) {
	return kindChecker{Checker: &probecheck.HTTP{Method: k.Method, Address: k.Address, Path: k.Path,
		Host: k.Host, ExpectStatus: k.ExpectStatus, ExpectBody: k.ExpectBody}}, nil
}

// TCPKeys are a tcp probe's own keys.
type TCPKeys struct {
	Address string `toml:"address"`
	Send    string `toml:"send"`
	Expect  string `toml:"expect"`
}

func (k *TCPKeys) check(c *Common) []string {
	msgs := checkExpect(nil, k.Expect)
	return checkHostPort(msgs, &k.Address, c)
}

func (k *TCPKeys) checker(*Common) (checker, error) {
	return kindChecker{Checker: &probecheck.TCP{Address: k.Address, Send: k.Send, Expect: k.Expect}}, nil
}

// FastCGIKeys are a fastcgi probe's own keys.
type FastCGIKeys struct {
	Address      string `toml:"address"`
	Script       string `toml:"script"`
	ExpectStatus []int  `toml:"expect_status"`
	ExpectBody   string `toml:"expect_body"`
	// Path and Expect are fastcgi-healthcheck's names for Script and
	// ExpectBody; check moves them there.
	Path   string `toml:"path"`
	Expect string `toml:"expect"`
}

func (k *FastCGIKeys) check(*Common) []string {
	msgs := checkExpect(nil, k.ExpectBody, k.Expect)
	msgs = checkStatuses(msgs, k.ExpectStatus)
	if k.Path != "" {
		if k.Script != "" {
			msgs = append(msgs, "path and script name the same thing; set one")
		}
		k.Script, k.Path = k.Path, ""
	}
	if k.Expect != "" {
		if k.ExpectBody != "" {
			msgs = append(msgs, "expect and expect_body name the same thing; set one")
		}
		k.ExpectBody, k.Expect = k.Expect, ""
	}
	if k.Address == "" {
		k.Address = DefaultFastCGIAddress
	}
	if k.Script == "" {
		k.Script = DefaultFastCGIScript
	}
	if k.ExpectBody == "" {
		k.ExpectBody = DefaultFastCGIExpect
	}
	if _, _, err := probecheck.FastCGINetwork(k.Address); err != nil {
		msgs = append(msgs, err.Error())
	}
	if !strings.HasPrefix(k.Script, "/") {
		msgs = append(msgs, fmt.Sprintf("script %q: want an absolute path such as /fpm-ping", k.Script))
	}
	return msgs
}

func (k *FastCGIKeys) checker(*Common) (checker, error) {
	network, addr, err := probecheck.FastCGINetwork(k.Address)
	if err != nil {
		return nil, err
	}
	return kindChecker{Checker: &probecheck.FastCGI{Network: network, Address: addr, Script: k.Script,
		ExpectStatus: k.ExpectStatus, ExpectBody: k.ExpectBody}}, nil
}

// ContainerKeys are a container probe's own keys: the socket, and one of
// Container, Label and NamePrefix.
type ContainerKeys struct {
	Socket    string `toml:"socket"`
	Container string `toml:"container"`
	// Label is key or key=value, or a list of them that a container
	// must all have (a Compose project and service).
	Label      any    `toml:"label"`
	NamePrefix string `toml:"name_prefix"` // app- matches app-1, app-2...
	Match      string `toml:"match"`       // all (default) or any, with several matches
}

func (k *ContainerKeys) check(*Common) []string {
	var msgs []string
	if k.Socket == "" {
		k.Socket = DefaultDockerSocket
	}
	if !filepath.IsAbs(k.Socket) {
		msgs = append(msgs, fmt.Sprintf("socket %q: want an absolute path", k.Socket))
	}
	labels, bad := k.labels()
	msgs = append(msgs, bad...)
	n := 0
	for _, set := range []bool{k.Container != "", len(labels) > 0, k.NamePrefix != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		msgs = append(msgs, "set one of container (a name or ID), label (key=value) and name_prefix")
	}
	if k.Container != "" && strings.ContainsAny(k.Container, "/?#% ") {
		msgs = append(msgs, fmt.Sprintf("container %q: want a container name or ID", k.Container))
	}
	for _, l := range labels {
		if l == "" || strings.HasPrefix(l, "=") || strings.ContainsAny(l, "\r\n") {
			msgs = append(msgs, fmt.Sprintf("label %q: want key or key=value", l))
		}
	}
	if k.NamePrefix != "" && !probecheck.ValidContainerName(k.NamePrefix) {
		msgs = append(msgs, fmt.Sprintf("name_prefix %q: want the start of a container name (letters, digits, _ . -)", k.NamePrefix))
	}
	switch k.Match {
	case "":
		k.Match = MatchAll
	case MatchAll, MatchAny:
		if k.Container != "" {
			msgs = append(msgs, "match applies to label and name_prefix (container names one container)")
		}
	default:
		msgs = append(msgs, fmt.Sprintf("match %q: want all or any", k.Match))
	}
	return msgs
}

// labels is Label as a list: one string, or a list of strings; bad says
// what else it holds.
func (k *ContainerKeys) labels() (labels, bad []string) {
	switch v := k.Label.(type) {
	case nil:
	case string:
		labels = []string{v}
	case []any:
		for _, e := range v {
			if l, ok := e.(string); ok {
				labels = append(labels, l)
			} else {
				bad = append(bad, fmt.Sprintf("label %v: want key=value or a list of them", e))
			}
		}
	default:
		bad = append(bad, fmt.Sprintf("label %v: want key=value or a list of them", v))
	}
	return labels, bad
}

func (k *ContainerKeys) checker(*Common) (checker, error) {
	labels, _ := k.labels()
	return kindChecker{Checker: &probecheck.Container{Socket: k.Socket, Name: k.Container, Labels: labels,
		NamePrefix: k.NamePrefix, Any: k.Match == MatchAny}}, nil
}

// ExecKeys are an exec probe's own keys.
type ExecKeys struct {
	Command []string `toml:"command"`
	// Output is how the result is read: "exit" (the exit code, the
	// default) or "agent" (the exit code, then the first line of stdout as
	// HAProxy agent words).
	Output string `toml:"output"`
}

func (k *ExecKeys) check(*Common) []string {
	var msgs []string
	if len(k.Command) == 0 || !filepath.IsAbs(k.Command[0]) {
		msgs = append(msgs, "command: want [\"/absolute/path\", \"arg\", ...]")
	}
	switch k.Output {
	case "":
		k.Output = OutputExit
	case OutputExit, OutputAgent:
	default:
		msgs = append(msgs, fmt.Sprintf("output %q: want exit or agent", k.Output))
	}
	return msgs
}

func (k *ExecKeys) checker(c *Common) (checker, error) {
	agent := k.Output == OutputAgent
	return kindChecker{Checker: &probecheck.Exec{Command: k.Command, Service: c.Service, Agent: agent}, agent: agent}, nil
}

// checkExpect bounds the expected texts.
func checkExpect(msgs []string, texts ...string) []string {
	for _, s := range texts {
		if len(s) > maxExpectLen {
			return append(msgs, fmt.Sprintf("expected text longer than %d bytes", maxExpectLen))
		}
	}
	return msgs
}

func checkStatuses(msgs []string, codes []int) []string {
	for _, code := range codes {
		if code < 100 || code > 599 {
			msgs = append(msgs, fmt.Sprintf("expect_status %d: want 100..599", code))
		}
	}
	return msgs
}

// checkHostPort defaults *addr from the service name and checks it is
// host:port.
func checkHostPort(msgs []string, addr *string, c *Common) []string {
	if *addr == "" {
		*addr = c.defaultAddress()
	}
	if *addr == "" {
		return append(msgs, "address is required (host:port) unless the service name ends in .PORT")
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return append(msgs, fmt.Sprintf("address %q: want host:port", *addr))
	}
	return msgs
}
