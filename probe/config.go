package probe

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
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

// Values of an exec probe's output key.
const (
	OutputExit  = "exit"  // the exit code alone decides
	OutputAgent = "agent" // and stdout's first line, in HAProxy's agent words
)

// Defaults applied when neither [defaults] nor the probe sets a value.
const (
	DefaultInterval     = 5 * time.Second
	DefaultTimeout      = 2 * time.Second
	DefaultRise         = 2
	DefaultFall         = 3
	DefaultDockerSocket = "/var/run/docker.sock"
	MinInterval         = 100 * time.Millisecond
	MaxRiseFall         = 100
	defaultInitial      = "down"
	maxExpectLen        = 1024
	defaultHTTPMethod   = "GET"
	defaultHTTPPath     = "/"
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

// Common are the keys every [[probe]] table has, whatever its kind.
type Common struct {
	Service   string `toml:"service"`
	Name      string `toml:"name"`
	Kind      string `toml:"kind"`
	OnlyIfVIP string `toml:"only_if_vip"`
	// ConnPort is the local port whose connections count for the service
	// (traffic arriving on another port than the name's); it does not
	// change the probe. Probes of one service must agree on it.
	ConnPort int `toml:"conn_port"`
	Timing
}

// ID names a probe in logs: "php.9000/fpm-ping".
func (c *Common) ID() string { return c.Service + "/" + c.Name }

// Spec is one [[probe]] table: the common keys and those of its kind.
type Spec struct {
	Common
	// Keys are the kind's own keys (*HTTPKeys for kind http, and so on).
	Keys Keys

	// Line is where the [[probe]] table starts in the file (0 if unknown).
	Line int
	// VIP is OnlyIfVIP parsed; valid only when OnlyIfVIP is set.
	VIP netip.Addr
}

// Equal reports whether s and o are the same probe with the same settings:
// a reload keeps such a probe running, with its state. Where the table is
// in the file and conn_port (which only says which connections count for
// the service) are not settings of the probe.
func (s *Spec) Equal(o *Spec) bool {
	a, b := s.Common, o.Common
	a.ConnPort, b.ConnPort = 0, 0
	// The kinds' keys hold lists (expect_status, command), so they are
	// compared in depth; the common keys are comparable as they are.
	return a == b && s.VIP == o.VIP && reflect.DeepEqual(s.Keys, o.Keys)
}

// Config is a parsed, validated probe configuration.
type Config struct {
	Defaults Timing
	Probes   []Spec
	// Source is the file it came from (for messages).
	Source string
	// timeoutWritten: [defaults] sets a timeout. Where no timeout is
	// written at all, a probe's is DefaultTimeout cut to its interval:
	// "interval = \"1s\"" alone used to be refused with "timeout 2s is
	// longer than interval 1s", a timeout nobody wrote.
	timeoutWritten bool
}

// LoadFile reads and validates a configuration file.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("probe config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates a configuration. Unknown keys, keys of
// another kind, wrong types and invalid values are errors that name the
// file and line ("probes.toml:12: ..."); several are joined.
//
// The file is decoded in two steps: the document with each [[probe]] table
// as a map (so that [defaults] and the top level are checked against their
// structs, with go-toml's positions), then each table into [Common] and the
// struct of its kind, both refusing keys they do not declare.
func Parse(data []byte, source string) (*Config, error) {
	if source == "" {
		source = "config"
	}
	var doc file
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, decodeErr(source, err)
	}
	c := &Config{Defaults: doc.Defaults, Source: source, timeoutWritten: doc.Defaults.Timeout.Duration != 0}
	var errs []error
	if !c.timeoutWritten {
		c.Defaults.Timeout.Duration = builtinTimeout(c.Defaults.Interval.Duration, DefaultInterval)
	}
	if msg := c.Defaults.fill(&Timing{
		Interval: Duration{DefaultInterval}, Timeout: Duration{DefaultTimeout},
		Rise: DefaultRise, Fall: DefaultFall, Initial: defaultInitial,
	}); msg != "" {
		errs = append(errs, fmt.Errorf("%s: [defaults]: %s", source, msg))
	}
	tables := probeTables(data)
	seen := map[string]int{}
	for i, m := range doc.Probes {
		var t table
		if i < len(tables) {
			t = tables[i]
		}
		s, ok, derrs := decodeProbe(m, t, source)
		errs = append(errs, derrs...)
		if !ok {
			continue
		}
		errs = append(errs, c.check(&s, seen)...)
		c.Probes = append(c.Probes, s)
	}
	errs = append(errs, c.checkConnPorts()...)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// file is the document as first decoded: each [[probe]] table is a map,
// decoded again by decodeProbe.
type file struct {
	Defaults Timing           `toml:"defaults"`
	Probes   []map[string]any `toml:"probe"`
}

// table is where a [[probe]] table and its keys are in the file.
type table struct {
	line int
	keys map[string]int // the line of each key (its first part)
}

// at is "file:line" for a message about key (its line if known, else the
// table's), followed by ": probe "ID"" when id is known.
func (t table) at(source, key, id string) string {
	w := source
	if l := t.keys[key]; l > 0 {
		w += ":" + strconv.Itoa(l)
	} else if t.line > 0 {
		w += ":" + strconv.Itoa(t.line)
	}
	if id != "" {
		w += ": probe " + strconv.Quote(id)
	}
	return w
}

// commonKeys are the keys of [Common].
var commonKeys = keysOf(reflect.TypeFor[Common]())

// decodeProbe decodes one [[probe]] table, as go-toml decoded it into m,
// into a Spec: the common keys into Common, the others into the struct of
// the kind. ok is false when the Spec is not worth checking further (a
// value of the wrong type).
func decodeProbe(m map[string]any, t table, source string) (s Spec, ok bool, errs []error) {
	s.Line = t.line
	common, own := map[string]any{}, map[string]any{}
	for k, v := range m {
		if slices.Contains(commonKeys, k) {
			common[k] = v
		} else {
			own[k] = v
		}
	}
	// Until Common is decoded, messages name the probe from the map.
	service, _ := m["service"].(string)
	name, _ := m["name"].(string)
	if name == "" {
		name, _ = m["kind"].(string)
	}
	id := ""
	if service != "" {
		id = service + "/" + name
	}
	if err := decodeStrict(common, &s.Common); err != nil {
		return s, false, tableErrs(err, t, source, id, "")
	}
	s.Keys = newKeys(s.Kind)
	if s.Keys == nil {
		// The kind is refused by check; its keys cannot be judged.
		return s, true, nil
	}
	if err := decodeStrict(own, s.Keys); err != nil {
		errs = tableErrs(err, t, source, id, s.Kind)
		var sm *toml.StrictMissingError
		return s, errors.As(err, &sm), errs
	}
	return s, true, nil
}

// decodeStrict decodes m (a table go-toml decoded) into v, refusing a key
// v does not declare. go-toml decodes from text only, so m is written out
// again: the same values, at other positions (see tableErrs).
func decodeStrict(m map[string]any, v any) error {
	b, err := toml.Marshal(m)
	if err != nil {
		return err
	}
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// tableErrs turns an error decoding a [[probe]] table (a re-encoding of
// it: go-toml's positions are not the file's) into messages at the
// file's lines.
func tableErrs(err error, t table, source, id, kind string) []error {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		errs := make([]error, 0, len(sm.Errors))
		for i := range sm.Errors {
			key := sm.Errors[i].Key()
			errs = append(errs, unknownKey(t, source, id, kind, key))
		}
		return errs
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		key := de.Key()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if len(key) > 0 {
			return []error{fmt.Errorf("%s: %s: %s", t.at(source, key[0], id), strings.Join(key, "."), msg)}
		}
		return []error{fmt.Errorf("%s: %s", t.at(source, "", id), msg)}
	}
	return []error{fmt.Errorf("%s: %w", t.at(source, "", id), err)}
}

// unknownKey says that a probe of kind has no key named key: that it is
// another kind's, or no kind's.
func unknownKey(t table, source, id, kind string, key []string) error {
	if others := kindsWithKey(key[0]); len(others) > 0 {
		return fmt.Errorf("%s: key %q does not apply to kind %q (only to %s)", t.at(source, key[0], id), key[0], kind, orList(others))
	}
	// As for an unknown key elsewhere in the file, then which probe.
	msg := fmt.Sprintf("%s: unknown key %q", t.at(source, key[0], ""), "probe."+strings.Join(key, "."))
	if id != "" {
		msg += " in probe " + strconv.Quote(id)
	}
	if kind != "" {
		msg += " of kind " + strconv.Quote(kind)
	}
	return errors.New(msg)
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

// probeTables finds each top-level [[probe]] table, in order: the line of
// its header and of each of its keys. Probes written as an inline array
// (probe = [{...}]) have no lines.
func probeTables(data []byte) []table {
	var p unstable.Parser
	p.Reset(data)
	var out []table
	cur := -1 // the [[probe]] table the expressions belong to, or -1
	// The parser's Shape counts lines from the start of the file on every
	// call: with a key per line, finding the lines that way is quadratic.
	var newlines []int
	for i, b := range data {
		if b == '\n' {
			newlines = append(newlines, i)
		}
	}
	line := func(n *unstable.Node) int {
		i, _ := slices.BinarySearch(newlines, int(n.Raw.Offset))
		return i + 1
	}
	for p.NextExpression() {
		e := p.Expression()
		it := e.Key()
		if !it.Next() {
			continue
		}
		first := it.Node()
		switch e.Kind {
		case unstable.KeyValue:
			if cur >= 0 {
				if _, dup := out[cur].keys[string(first.Data)]; !dup {
					out[cur].keys[string(first.Data)] = line(first)
				}
			}
		case unstable.ArrayTable, unstable.Table:
			isProbe := string(first.Data) == "probe"
			switch {
			case isProbe && it.IsLast() && e.Kind == unstable.ArrayTable:
				out = append(out, table{line: line(first), keys: map[string]int{}})
				cur = len(out) - 1
			case isProbe && cur >= 0 && it.Next():
				// [probe.x] or [[probe.x]]: key x of the last probe.
				if _, dup := out[cur].keys[string(it.Node().Data)]; !dup {
					out[cur].keys[string(it.Node().Data)] = line(first)
				}
			default:
				cur = -1
			}
		}
	}
	return out
}

// fill sets t's unset values from d and checks the result.
// builtinTimeout is the timeout where none is written: DefaultTimeout, or
// the interval (else fallback) when that is shorter.
func builtinTimeout(interval, fallback time.Duration) time.Duration {
	if interval == 0 {
		interval = fallback
	}
	return min(DefaultTimeout, interval)
}

func (t *Timing) fill(d *Timing) string {
	if t.Interval.Duration == 0 {
		t.Interval = d.Interval
	}
	if t.Timeout.Duration == 0 {
		t.Timeout = d.Timeout
	}
	if t.Rise == 0 {
		t.Rise = d.Rise
	}
	if t.Fall == 0 {
		t.Fall = d.Fall
	}
	if t.Initial == "" {
		t.Initial = d.Initial
	}
	return t.check()
}

// check validates a decoded probe, fills in its defaults and records its
// ID in seen.
func (c *Config) check(s *Spec, seen map[string]int) []error {
	var errs []error
	at := func(format string, args ...any) {
		where := c.Source
		if s.Line > 0 {
			where += ":" + strconv.Itoa(s.Line)
		}
		if s.Service != "" {
			where += ": probe " + strconv.Quote(s.ID())
		}
		errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
	}
	if !cache.ValidName(s.Service) {
		at("service %q: want a flag-file name like php.9000 (letters, digits, . _ - @ + :)", s.Service)
		return errs
	}
	if s.Name == "" {
		s.Name = s.Kind
	}
	if prev, dup := seen[s.ID()]; dup {
		at("duplicate probe name (also at line %d); set name = \"...\" to tell them apart", prev)
	}
	seen[s.ID()] = s.Line
	if s.Timeout.Duration == 0 && !c.timeoutWritten {
		s.Timeout.Duration = builtinTimeout(s.Interval.Duration, c.Defaults.Interval.Duration)
	}
	if msg := s.Timing.fill(&c.Defaults); msg != "" {
		at("%s", msg)
	}
	if s.OnlyIfVIP != "" {
		a, err := netip.ParseAddr(s.OnlyIfVIP)
		if err != nil || a.Zone() != "" {
			at("only_if_vip %q: not an IP address", s.OnlyIfVIP)
		}
		s.VIP = a.Unmap()
	}
	if s.Keys == nil {
		at("kind %q: want %s", s.Kind, kindNames())
		return errs
	}
	for _, msg := range s.Keys.check(&s.Common) {
		at("%s", msg)
	}
	return errs
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

// defaultAddress is 127.0.0.1:PORT for a service named NAME.PORT.
func (c *Common) defaultAddress() string {
	i := strings.LastIndexByte(c.Service, '.')
	if i < 0 {
		return ""
	}
	p, err := strconv.Atoi(c.Service[i+1:])
	if err != nil || p < 1 || p > 65535 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}
