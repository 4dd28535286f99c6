package probe

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/http-status/http_status/cache"
)

// Kinds of probes.
const (
	KindHTTP      = "http"
	KindTCP       = "tcp"
	KindFastCGI   = "fastcgi"
	KindContainer = "container"
	KindExec      = "exec"
)

// Values of a container probe's match key.
const (
	MatchAll = "all" // every matching container must be healthy
	MatchAny = "any" // one healthy matching container is enough
)

// validContainerName reports whether s may start a Docker container name
// ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
func validContainerName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return s != ""
}

// Values of an exec probe's output key.
const (
	OutputExit  = "exit"  // the exit code alone decides
	OutputAgent = "agent" // and stdout's first line, in HAProxy's agent words
)

// Defaults applied when neither [defaults] nor the probe sets a value.
const (
	DefaultInterval      = 5 * time.Second
	DefaultTimeout       = 2 * time.Second
	DefaultRise          = 2
	DefaultFall          = 3
	DefaultDockerSocket  = "/var/run/docker.sock"
	MinInterval          = 100 * time.Millisecond
	MaxRiseFall          = 100
	defaultInitial       = "down"
	maxExpectLen         = 1024
	defaultHTTPMethod    = "GET"
	defaultHTTPPath      = "/"
	defaultFastCGIMethod = "GET"
	// php-fpm's own defaults: listen = 127.0.0.1:9000, ping.path = /ping,
	// ping.response = pong.
	DefaultFastCGIAddress = "127.0.0.1:9000"
	DefaultFastCGIScript  = "/ping"
	DefaultFastCGIExpect  = "pong"
)

// Duration is a time.Duration written as a string in the file ("5s", "1m30s").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit, like 5s or 1m30s", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back ("5s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Timing is the schedule shared by [defaults] and each probe.
type Timing struct {
	Interval Duration `toml:"interval"`
	Timeout  Duration `toml:"timeout"`
	Rise     int      `toml:"rise"`
	Fall     int      `toml:"fall"`
	// Initial is the state before the first result: "down" (the first
	// result decides at once) or "up" (up until fall failures).
	Initial string `toml:"initial"`
}

// Spec is one [[probe]] table. Which keys apply depends on Kind; a key that
// does not apply to the kind is an error.
type Spec struct {
	Service   string `toml:"service"`
	Name      string `toml:"name"`
	Kind      string `toml:"kind"`
	OnlyIfVIP string `toml:"only_if_vip"`
	// ConnPort is the local port whose connections count for the service
	// (traffic arriving on another port than the name's); it does not
	// change the probe. Probes of one service must agree on it.
	ConnPort int `toml:"conn_port"`
	Timing

	// http, tcp, fastcgi
	Address string `toml:"address"`
	// http
	Method string `toml:"method"`
	Path   string `toml:"path"`
	Host   string `toml:"host"`
	// http, fastcgi
	ExpectStatus []int  `toml:"expect_status"`
	ExpectBody   string `toml:"expect_body"`
	// tcp
	Send   string `toml:"send"`
	Expect string `toml:"expect"`
	// fastcgi
	Script string `toml:"script"`
	// container: one of Container, Label, NamePrefix
	Socket     string `toml:"socket"`
	Container  string `toml:"container"`
	Label      string `toml:"label"`       // key or key=value
	NamePrefix string `toml:"name_prefix"` // app- matches app-1, app-2...
	Match      string `toml:"match"`       // all (default) or any, with several matches
	// exec
	Command []string `toml:"command"`
	// Output is how an exec probe's result is read: "exit" (the exit
	// code, the default) or "agent" (the exit code, then the first line of
	// stdout as HAProxy agent words).
	Output string `toml:"output"`

	// Line is where the [[probe]] table starts in the file (0 if unknown).
	Line int `toml:"-"`
	// VIP is OnlyIfVIP parsed; valid only when OnlyIfVIP is set.
	VIP netip.Addr `toml:"-"`
}

// ID names a probe in logs: "php.9000/fpm-ping".
func (s *Spec) ID() string { return s.Service + "/" + s.Name }

// Config is a parsed, validated probe configuration.
type Config struct {
	Defaults Timing `toml:"defaults"`
	Probes   []Spec `toml:"probe"`
	// Source is the file it came from (for messages).
	Source string `toml:"-"`
}

// LoadFile reads and validates a configuration file.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("probe config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates a configuration. Unknown keys, wrong types and
// invalid values are errors that name the file and line ("probes.toml:12:
// ..."); several are joined.
func Parse(data []byte, source string) (*Config, error) {
	if source == "" {
		source = "config"
	}
	c := &Config{Source: source}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, decodeErr(source, err)
	}
	lines := probeLines(data)
	for i := range c.Probes {
		if i < len(lines) {
			c.Probes[i].Line = lines[i]
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeErr(source string, err error) error {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		errs := make([]error, 0, len(sm.Errors))
		for i := range sm.Errors {
			de := &sm.Errors[i]
			row, _ := de.Position()
			errs = append(errs, fmt.Errorf("%s:%d: unknown key %q", source, row, strings.Join(de.Key(), ".")))
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Errorf("%s:%d:%d: %s", source, row, col, strings.TrimPrefix(de.Error(), "toml: "))
	}
	return fmt.Errorf("%s: %w", source, err)
}

// probeLines returns the line of each top-level [[probe]] header, in order.
func probeLines(data []byte) []int {
	var p unstable.Parser
	p.Reset(data)
	var out []int
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.ArrayTable {
			continue
		}
		it := e.Key()
		if !it.Next() {
			continue
		}
		k := it.Node()
		if string(k.Data) != "probe" || !it.IsLast() {
			continue
		}
		out = append(out, p.Shape(k.Raw).Start.Line)
	}
	return out
}

func (c *Config) validate() error {
	var errs []error
	at := func(s *Spec, format string, args ...any) {
		where := c.Source
		if s != nil && s.Line > 0 {
			where += ":" + strconv.Itoa(s.Line)
		}
		if s != nil && s.Service != "" {
			where += ": probe " + strconv.Quote(s.Service+"/"+s.Name)
		}
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
	}
	d := &c.Defaults
	if d.Interval.Duration == 0 {
		d.Interval.Duration = DefaultInterval
	}
	if d.Timeout.Duration == 0 {
		d.Timeout.Duration = DefaultTimeout
	}
	if d.Rise == 0 {
		d.Rise = DefaultRise
	}
	if d.Fall == 0 {
		d.Fall = DefaultFall
	}
	if d.Initial == "" {
		d.Initial = defaultInitial
	}
	if msg := d.check(); msg != "" {
		errs = append(errs, fmt.Errorf("%s: [defaults]: %s", c.Source, msg))
	}
	seen := map[string]int{}
	for i := range c.Probes {
		s := &c.Probes[i]
		if !cache.ValidName(s.Service) {
			at(s, "service %q: want a flag-file name like php.9000 (letters, digits, . _ - @ + :)", s.Service)
			continue
		}
		if s.Name == "" {
			s.Name = s.Kind
		}
		if s.Interval.Duration == 0 {
			s.Interval = d.Interval
		}
		if s.Timeout.Duration == 0 {
			s.Timeout = d.Timeout
		}
		if s.Rise == 0 {
			s.Rise = d.Rise
		}
		if s.Fall == 0 {
			s.Fall = d.Fall
		}
		if s.Initial == "" {
			s.Initial = d.Initial
		}
		if prev, dup := seen[s.ID()]; dup {
			at(s, "duplicate probe name (also at line %d); set name = \"...\" to tell them apart", prev)
		}
		seen[s.ID()] = s.Line
		if msg := s.Timing.check(); msg != "" {
			at(s, "%s", msg)
		}
		if s.OnlyIfVIP != "" {
			a, err := netip.ParseAddr(s.OnlyIfVIP)
			if err != nil || a.Zone() != "" {
				at(s, "only_if_vip %q: not an IP address", s.OnlyIfVIP)
			}
			s.VIP = a.Unmap()
		}
		for _, msg := range s.checkKind() {
			at(s, "%s", msg)
		}
	}
	errs = append(errs, c.checkConnPorts()...)
	return errors.Join(errs...)
}

// checkConnPorts checks each conn_port and that the probes of a service
// agree on it.
func (c *Config) checkConnPorts() []error {
	var errs []error
	first := map[string]*Spec{}
	for i := range c.Probes {
		s := &c.Probes[i]
		if s.ConnPort == 0 {
			continue
		}
		if s.ConnPort < 1 || s.ConnPort > 65535 {
			errs = append(errs, fmt.Errorf("%s:%d: probe %q: conn_port %d: want 1..65535", c.Source, s.Line, s.ID(), s.ConnPort))
			continue
		}
		if f := first[s.Service]; f != nil && f.ConnPort != s.ConnPort {
			errs = append(errs, fmt.Errorf("%s:%d: probe %q: conn_port %d, but line %d says %d for the same service", c.Source, s.Line, s.ID(), s.ConnPort, f.Line, f.ConnPort))
			continue
		}
		first[s.Service] = s
	}
	return errs
}

// ConnPorts maps each service that sets conn_port to it.
func (c *Config) ConnPorts() map[string]uint16 {
	out := map[string]uint16{}
	if c == nil {
		return out
	}
	for _, s := range c.Probes {
		if s.ConnPort >= 1 && s.ConnPort <= 65535 {
			out[s.Service] = uint16(s.ConnPort)
		}
	}
	return out
}

func (t *Timing) check() string {
	switch {
	case t.Interval.Duration < MinInterval:
		return fmt.Sprintf("interval %s: want at least %s", t.Interval, MinInterval)
	case t.Timeout.Duration <= 0:
		return fmt.Sprintf("timeout %s: want more than 0", t.Timeout)
	case t.Timeout.Duration > t.Interval.Duration:
		return fmt.Sprintf("timeout %s is longer than interval %s", t.Timeout, t.Interval)
	case t.Rise < 1 || t.Rise > MaxRiseFall:
		return fmt.Sprintf("rise %d: want 1..%d", t.Rise, MaxRiseFall)
	case t.Fall < 1 || t.Fall > MaxRiseFall:
		return fmt.Sprintf("fall %d: want 1..%d", t.Fall, MaxRiseFall)
	case t.Initial != "down" && t.Initial != "up":
		return fmt.Sprintf("initial %q: want down or up", t.Initial)
	}
	return ""
}

// keysByKind lists the kind-specific keys each kind accepts.
var keysByKind = map[string][]string{
	KindHTTP:      {"address", "method", "path", "host", "expect_status", "expect_body"},
	KindTCP:       {"address", "send", "expect"},
	KindFastCGI:   {"address", "script", "path", "expect_status", "expect_body", "expect"},
	KindContainer: {"socket", "container", "label", "name_prefix", "match"},
	KindExec:      {"command", "output"},
}

// setKeys lists the kind-specific keys that are set.
func (s *Spec) setKeys() []string {
	var out []string
	add := func(k string, set bool) {
		if set {
			out = append(out, k)
		}
	}
	add("address", s.Address != "")
	add("method", s.Method != "")
	add("path", s.Path != "")
	add("host", s.Host != "")
	add("expect_status", s.ExpectStatus != nil)
	add("expect_body", s.ExpectBody != "")
	add("send", s.Send != "")
	add("expect", s.Expect != "")
	add("script", s.Script != "")
	add("socket", s.Socket != "")
	add("container", s.Container != "")
	add("label", s.Label != "")
	add("name_prefix", s.NamePrefix != "")
	add("match", s.Match != "")
	add("command", s.Command != nil)
	add("output", s.Output != "")
	return out
}

// checkKind validates the kind-specific keys and fills their defaults.
func (s *Spec) checkKind() []string {
	allowed, ok := keysByKind[s.Kind]
	if !ok {
		return []string{fmt.Sprintf("kind %q: want http, tcp, fastcgi, container or exec", s.Kind)}
	}
	var msgs []string
	for _, k := range s.setKeys() {
		if !contains(allowed, k) {
			msgs = append(msgs, fmt.Sprintf("key %q does not apply to kind %q", k, s.Kind))
		}
	}
	if len(s.ExpectBody) > maxExpectLen || len(s.Expect) > maxExpectLen {
		msgs = append(msgs, fmt.Sprintf("expected text longer than %d bytes", maxExpectLen))
	}
	for _, code := range s.ExpectStatus {
		if code < 100 || code > 599 {
			msgs = append(msgs, fmt.Sprintf("expect_status %d: want 100..599", code))
		}
	}
	switch s.Kind {
	case KindHTTP, KindTCP:
		if s.Address == "" {
			s.Address = s.defaultAddress()
		}
		if s.Address == "" {
			msgs = append(msgs, "address is required (host:port) unless the service name ends in .PORT")
		} else if _, _, err := net.SplitHostPort(s.Address); err != nil {
			msgs = append(msgs, fmt.Sprintf("address %q: want host:port", s.Address))
		}
		if s.Kind == KindHTTP {
			if s.Method == "" {
				s.Method = defaultHTTPMethod
			}
			if !isToken(s.Method) {
				msgs = append(msgs, fmt.Sprintf("method %q: not an HTTP method", s.Method))
			}
			if s.Path == "" {
				s.Path = defaultHTTPPath
			}
			if !strings.HasPrefix(s.Path, "/") || strings.ContainsAny(s.Path, " \r\n") {
				msgs = append(msgs, fmt.Sprintf("path %q: want an absolute path without spaces", s.Path))
			}
			if strings.ContainsAny(s.Host, " \r\n/") {
				msgs = append(msgs, fmt.Sprintf("host %q: not a host name", s.Host))
			}
		}
	case KindFastCGI:
		// path and expect are fastcgi-healthcheck's names for script and
		// expect_body.
		if s.Path != "" {
			if s.Script != "" {
				msgs = append(msgs, "path and script name the same thing; set one")
			}
			s.Script, s.Path = s.Path, ""
		}
		if s.Expect != "" {
			if s.ExpectBody != "" {
				msgs = append(msgs, "expect and expect_body name the same thing; set one")
			}
			s.ExpectBody, s.Expect = s.Expect, ""
		}
		if s.Address == "" {
			s.Address = DefaultFastCGIAddress
		}
		if s.Script == "" {
			s.Script = DefaultFastCGIScript
		}
		if s.ExpectBody == "" {
			s.ExpectBody = DefaultFastCGIExpect
		}
		if _, _, err := fcgiNetwork(s.Address); err != nil {
			msgs = append(msgs, err.Error())
		}
		if !strings.HasPrefix(s.Script, "/") {
			msgs = append(msgs, fmt.Sprintf("script %q: want an absolute path such as /fpm-ping", s.Script))
		}
	case KindContainer:
		if s.Socket == "" {
			s.Socket = DefaultDockerSocket
		}
		if !filepath.IsAbs(s.Socket) {
			msgs = append(msgs, fmt.Sprintf("socket %q: want an absolute path", s.Socket))
		}
		n := 0
		for _, set := range []bool{s.Container != "", s.Label != "", s.NamePrefix != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			msgs = append(msgs, "set one of container (a name or ID), label (key=value) and name_prefix")
		}
		if s.Container != "" && strings.ContainsAny(s.Container, "/?#% ") {
			msgs = append(msgs, fmt.Sprintf("container %q: want a container name or ID", s.Container))
		}
		if s.Label != "" && (strings.HasPrefix(s.Label, "=") || strings.ContainsAny(s.Label, "\r\n")) {
			msgs = append(msgs, fmt.Sprintf("label %q: want key or key=value", s.Label))
		}
		if s.NamePrefix != "" && !validContainerName(s.NamePrefix) {
			msgs = append(msgs, fmt.Sprintf("name_prefix %q: want the start of a container name (letters, digits, _ . -)", s.NamePrefix))
		}
		switch s.Match {
		case "":
			s.Match = MatchAll
		case MatchAll, MatchAny:
			if s.Container != "" {
				msgs = append(msgs, "match applies to label and name_prefix (container names one container)")
			}
		default:
			msgs = append(msgs, fmt.Sprintf("match %q: want all or any", s.Match))
		}
	case KindExec:
		if len(s.Command) == 0 || !filepath.IsAbs(s.Command[0]) {
			msgs = append(msgs, "command: want [\"/absolute/path\", \"arg\", ...]")
		}
		switch s.Output {
		case "":
			s.Output = OutputExit
		case OutputExit, OutputAgent:
		default:
			msgs = append(msgs, fmt.Sprintf("output %q: want exit or agent", s.Output))
		}
	}
	return msgs
}

// defaultAddress is 127.0.0.1:PORT for a service named NAME.PORT.
func (s *Spec) defaultAddress() string {
	i := strings.LastIndexByte(s.Service, '.')
	if i < 0 {
		return ""
	}
	p, err := strconv.Atoi(s.Service[i+1:])
	if err != nil || p < 1 || p > 65535 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

// fcgiNetwork maps a FastCGI address to a network and address: "unix:/path"
// or "/path" is a unix socket, anything else host:port over TCP.
func fcgiNetwork(addr string) (string, string, error) {
	switch {
	case strings.HasPrefix(addr, "unix:"):
		p := strings.TrimPrefix(addr, "unix:")
		if !filepath.IsAbs(p) {
			return "", "", fmt.Errorf("address %q: want unix:/absolute/path", addr)
		}
		return "unix", p, nil
	case strings.HasPrefix(addr, "/"):
		return "unix", addr, nil
	case addr == "":
		return "", "", errors.New("address is required: host:port, unix:/path or /path")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("address %q: want host:port, unix:/path or /path", addr)
	}
	return "tcp", addr, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
