package probe

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// sample is a valid value of each key, unlike its default, so that a
// probe setting it differs from one that does not.
var sample = map[string]string{
	// Common.
	"service": `"b.81"`, "name": `"n"`, "only_if_vip": `"192.0.2.1"`, "conn_port": `443`,
	"interval": `"3s"`, "timeout": `"1s"`, "rise": `5`, "fall": `4`, "initial": `"up"`,
	// Kinds.
	"address": `"127.0.0.1:1"`, "method": `"HEAD"`, "path": `"/x"`, "host": `"h"`,
	"expect_status": `[204]`, "expect_body": `"ok"`, "send": `"x"`, "expect": `"y"`,
	"script": `"/s"`, "socket": `"/run/x.sock"`, "container": `"c"`, "label": `"app=1"`,
	"name_prefix": `"app-"`, "match": `"any"`, "command": `["/bin/true"]`, "output": `"agent"`,
}

// base is the smallest valid [[probe]] table of each kind, one key a line.
var base = map[string][]string{
	KindHTTP:      {`service = "a.80"`, `kind = "http"`},
	KindTCP:       {`service = "a.80"`, `kind = "tcp"`},
	KindFastCGI:   {`service = "a.80"`, `kind = "fastcgi"`},
	KindContainer: {`service = "a.80"`, `kind = "container"`, `label = "base=1"`},
	KindExec:      {`service = "a.80"`, `kind = "exec"`, `command = ["/bin/false"]`},
}

// withKey is the base table of kind with key set to its sample (replacing
// the base's keys it conflicts with), and the line key is on.
func withKey(t *testing.T, kind, key string) (string, int) {
	t.Helper()
	v, ok := sample[key]
	if !ok {
		t.Fatalf("no sample value for key %q: add one", key)
	}
	return withValue(kind, key, v)
}

func withValue(kind, key, v string) (string, int) {
	lines := []string{"[[probe]]"}
	for _, l := range base[kind] {
		k, _, _ := strings.Cut(l, " ")
		if k == key || (kind == KindContainer && k == "label" && (key == "container" || key == "name_prefix")) {
			continue // one of container, label and name_prefix
		}
		lines = append(lines, l)
	}
	lines = append(lines, key+" = "+v)
	return strings.Join(lines, "\n") + "\n", len(lines)
}

func mustParseOne(t *testing.T, in string) Spec {
	t.Helper()
	c, err := Parse([]byte(in), "t.toml")
	if err != nil {
		t.Fatalf("%q: %v", in, err)
	}
	if len(c.Probes) != 1 {
		t.Fatalf("%q: %d probes", in, len(c.Probes))
	}
	return c.Probes[0]
}

func kindKeys(t *testing.T, kind string) []string {
	t.Helper()
	k := newKeys(kind)
	if k == nil {
		t.Fatalf("kind %q unknown", kind)
	}
	return keysOf(reflect.TypeOf(k).Elem())
}

// TestKindKeys: every kind accepts each of its keys and the common keys,
// and refuses every other kind's keys, and keys of none, naming the key,
// its line, the kind and the probe.
func TestKindKeys(t *testing.T) {
	if len(base) != len(kinds) {
		t.Fatalf("base tables for %d kinds, %d kinds", len(base), len(kinds))
	}
	for _, kd := range kinds {
		kind := kd.name
		t.Run(kind, func(t *testing.T) {
			zero := mustParseOne(t, "[[probe]]\n"+strings.Join(base[kind], "\n")+"\n")
			own := kindKeys(t, kind)
			for _, key := range append(slices.Clone(commonKeys), own...) {
				if key == "kind" {
					continue // every base table has it
				}
				in, _ := withKey(t, kind, key)
				s := mustParseOne(t, in)
				if reflect.DeepEqual(s, zero) {
					t.Errorf("%s = %s: accepted but ignored", key, sample[key])
				}
			}
			for _, other := range kinds {
				for _, key := range kindKeys(t, other.name) {
					if slices.Contains(own, key) {
						continue
					}
					in, line := withKey(t, kind, key)
					_, err := Parse([]byte(in), "t.toml")
					want := fmt.Sprintf(`t.toml:%d: probe "a.80/%s": key %q does not apply to kind %q (only to `, line, kind, key, kind)
					if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), other.name) {
						t.Errorf("%s in a %s probe: err %v, want %q naming %s", key, kind, err, want, other.name)
					}
				}
			}
			in, line := withValue(kind, "bogus", "1")
			_, err := Parse([]byte(in), "t.toml")
			if want := fmt.Sprintf(`t.toml:%d: unknown key "probe.bogus" in probe "a.80/%s" of kind %q`, line, kind, kind); err == nil || err.Error() != want {
				t.Errorf("unknown key: err %v, want %q", err, want)
			}
		})
	}
}

// TestKeysTagged: every key is a field with a lower-case toml tag, so
// that what the decoder accepts is what keysOf (messages, these tests)
// lists, and no key is declared twice for one kind.
func TestKeysTagged(t *testing.T) {
	types := []reflect.Type{reflect.TypeFor[Common]()}
	for _, k := range kinds {
		types = append(types, reflect.TypeOf(k.new()).Elem())
	}
	valid := regexp.MustCompile(`^[a-z][a-z_]*$`)
	for _, typ := range types[1:] {
		keys := append(slices.Clone(commonKeys), keysOf(typ)...)
		for _, k := range keys {
			if !valid.MatchString(k) {
				t.Errorf("%s: key %q: want a lower-case toml tag", typ, k)
			}
		}
		sorted := slices.Clone(keys)
		slices.Sort(sorted)
		if len(slices.Compact(sorted)) != len(keys) {
			t.Errorf("%s: a key declared twice: %v", typ, keys)
		}
	}
}

// readmeKeys reads README's "### Keys" tables: the common keys and each
// kind's.
func readmeKeys(t *testing.T) (common []string, byKind map[string][]string) {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n### Keys\n")
	if !ok {
		t.Fatal("README has no ### Keys section")
	}
	sec, _, _ = strings.Cut(sec, "\n### ")
	ticked := regexp.MustCompile("`([^`]+)`")
	byKind = map[string][]string{}
	table, kind := 0, ""
	for _, l := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(l, "|") {
			if table > 0 && strings.TrimSpace(l) != "" {
				table = -table // past that table
			}
			continue
		}
		cells := strings.Split(l, "|")
		if strings.HasPrefix(cells[1], " key ") || strings.HasPrefix(cells[1], " kind ") {
			table = -table + 1
			continue
		}
		if strings.HasPrefix(cells[1], " ---") {
			continue
		}
		switch table {
		case 1:
			for _, m := range ticked.FindAllStringSubmatch(cells[1], -1) {
				common = append(common, m[1])
			}
		case 2:
			if m := ticked.FindStringSubmatch(cells[1]); m != nil {
				kind = m[1]
			}
			for _, m := range ticked.FindAllStringSubmatch(cells[2], -1) {
				byKind[kind] = append(byKind[kind], m[1])
			}
		}
	}
	return common, byKind
}

// TestReadmeKeys: README documents exactly the keys the structs declare.
func TestReadmeKeys(t *testing.T) {
	common, byKind := readmeKeys(t)
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	if got, want := sorted(common), sorted(commonKeys); !slices.Equal(got, want) {
		t.Errorf("README's keys of every probe %v, Common declares %v", got, want)
	}
	if len(byKind) != len(kinds) {
		t.Errorf("README documents kinds %v, there are %d", byKind, len(kinds))
	}
	for _, k := range kinds {
		if got, want := sorted(byKind[k.name]), sorted(kindKeys(t, k.name)); !slices.Equal(got, want) {
			t.Errorf("README's keys of kind %s %v, %T declares %v", k.name, got, k.new(), want)
		}
	}
}

// TestReadmeExampleLoads: the example in README's Probes section loads.
func TestReadmeExampleLoads(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, _ := strings.Cut(string(b), "\n## Probes\n")
	sec, _, _ = strings.Cut(sec, "\n## ")
	_, ex, ok := strings.Cut(sec, "```toml\n")
	ex, _, _ = strings.Cut(ex, "```")
	if !ok || ex == "" {
		t.Fatal("README's Probes section has no toml example")
	}
	c, err := Parse([]byte(ex), "README.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Probes) != 2 || c.Probes[0].ID() != "php.9000/fpm-ping" || !c.Probes[1].VIP.IsValid() {
		t.Errorf("README example: %+v", c.Probes)
	}
}

// TestSpecEqual: a change of any key but conn_port makes a probe another
// probe (a reload restarts it); conn_port and the line do not.
func TestSpecEqual(t *testing.T) {
	for _, kd := range kinds {
		in, _ := withKey(t, kd.name, "only_if_vip")
		s := mustParseOne(t, in)
		other := mustParseOne(t, in)
		if !s.Equal(&other) || s.Keys == other.Keys {
			t.Fatalf("%s: two parses differ (or share keys)", kd.name)
		}
		// Every field of Common and of the kind's keys, changed one at a
		// time on a copy.
		var paths [][]int
		var walk func(typ reflect.Type, prefix []int)
		walk = func(typ reflect.Type, prefix []int) {
			for i := range typ.NumField() {
				f := typ.Field(i)
				p := append(slices.Clone(prefix), i)
				if f.Anonymous && f.Type.Kind() == reflect.Struct {
					walk(f.Type, p)
					continue
				}
				paths = append(paths, p)
			}
		}
		walk(reflect.TypeFor[Common](), nil)
		nCommon := len(paths)
		walk(reflect.TypeOf(s.Keys).Elem(), nil)
		for i, p := range paths {
			c := s
			keys := reflect.New(reflect.TypeOf(s.Keys).Elem())
			keys.Elem().Set(reflect.ValueOf(s.Keys).Elem())
			c.Keys = keys.Interface().(Keys)
			in := reflect.ValueOf(&c.Common).Elem()
			if i >= nCommon {
				in = keys.Elem()
			}
			f := in.FieldByIndex(p)
			name := in.Type().FieldByIndex(p).Name
			change(t, f)
			if eq := s.Equal(&c); eq != (name == "ConnPort") {
				t.Errorf("%s: %s changed: Equal = %v", kd.name, name, eq)
			}
		}
		c := s
		c.Line += 10
		if !s.Equal(&c) {
			t.Errorf("%s: the line changes the probe", kd.name)
		}
		c = s
		c.VIP = c.VIP.Next()
		if s.Equal(&c) {
			t.Errorf("%s: the VIP does not change the probe", kd.name)
		}
	}
}

// change sets v to another value of its type, with new backing arrays.
func change(t *testing.T, v reflect.Value) {
	t.Helper()
	if v.Kind() == reflect.Interface { // a key that takes one value or a list
		v.Set(reflect.ValueOf(fmt.Sprint(v.Interface()) + "x"))
		return
	}
	switch v.Interface().(type) {
	case string:
		v.SetString(v.String() + "x")
	case int:
		v.SetInt(v.Int() + 1)
	case Duration:
		v.Set(reflect.ValueOf(Duration{v.Interface().(Duration).Duration + time.Millisecond}))
	case []int:
		v.Set(reflect.ValueOf(append(slices.Clone(v.Interface().([]int)), 200)))
	case []string:
		v.Set(reflect.ValueOf(append(slices.Clone(v.Interface().([]string)), "x")))
	default:
		t.Fatalf("no way to change a %s: teach change", v.Type())
	}
}

// TestRunnerReloadKeeps: a reload keeps a probe whose settings are equal
// (only its line and conn_port changed) and replaces one whose list-valued
// key changed; a configuration naming one probe twice changes nothing.
func TestRunnerReloadKeeps(t *testing.T) {
	c := newCollector()
	r := newTestRunner(t, c, Options{})
	probe := func(extra string) *Config {
		return mustParse(t, "[[probe]]\nservice = \"x\"\nkind = \"exec\"\ncommand = [\"/bin/true\", \"a\"]\ninterval = \"1m\"\n"+extra)
	}
	running := func() *running {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.probes["x/exec"]
	}
	if err := r.Apply(probe("")); err != nil {
		t.Fatal(err)
	}
	first := running()
	moved := probe("conn_port = 443\n")
	moved.Probes[0].Line += 5
	if err := r.Apply(moved); err != nil {
		t.Fatal(err)
	}
	if running() != first {
		t.Error("a probe with the same settings was restarted")
	}
	changed := probe("")
	changed.Probes[0].Keys.(*ExecKeys).Command[1] = "b"
	if err := r.Apply(changed); err != nil {
		t.Fatal(err)
	}
	second := running()
	if second == first || second.spec.Keys.(*ExecKeys).Command[1] != "b" {
		t.Error("a probe with another command was kept")
	}
	twice := probe("")
	twice.Probes = append(twice.Probes, twice.Probes[0])
	if err := r.Apply(twice); err == nil || !strings.Contains(err.Error(), "x/exec: duplicate") {
		t.Errorf("the same probe twice: err %v", err)
	}
	if running() != second || r.NumProbes() != 1 {
		t.Error("a refused configuration changed the probes")
	}
}

// TestProbeDecodeErrors: messages about a [[probe]] table's keys name the
// file, the key's line and the probe; a table may also be written inline.
func TestProbeDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\n\n# x\nrise = \"two\"\n",
			`t.toml:6: probe "a.80/tcp": rise: cannot decode TOML string`},
		{"[[probe]]\nservice = \"a.80\"\nkind = \"http\"\nexpect_status = [200, \"x\"]\n",
			`t.toml:4: probe "a.80/http": expect_status: cannot decode TOML string`},
		{"[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\ninterval = \"5\"\n",
			`t.toml:4: probe "a.80/tcp": interval: duration "5": want a number with a unit`},
		{"[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\nfoo.bar = 1\n[probe.sub]\nx = 1\n",
			"t.toml:4: unknown key \"probe.foo\" in probe \"a.80/tcp\" of kind \"tcp\"\nt.toml:5: unknown key \"probe.sub\" in probe \"a.80/tcp\" of kind \"tcp\""},
		{"[[probe]]\nservice = \"a.80\"\nkind = \"container\"\naddress = \"x\"\nlabel = \"a\"\n",
			`t.toml:4: probe "a.80/container": key "address" does not apply to kind "container" (only to http, tcp or fastcgi)`},
		{"probe = [{service = \"a.80\", kind = \"tcp\", script = \"/x\"}]\n",
			`t.toml: probe "a.80/tcp": key "script" does not apply to kind "tcp" (only to fastcgi)`},
		{"[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\nscript = \"/x\"\n[[probe]]\nservice = \"b.80\"\nkind = \"exec\"\n",
			"t.toml:4: probe \"a.80/tcp\": key \"script\" does not apply to kind \"tcp\" (only to fastcgi)\nt.toml:5: probe \"b.80/exec\": command:"},
		{"probe = 5\n", "t.toml:1:9: cannot decode TOML integer"},
	} {
		_, err := Parse([]byte(tc.in), "t.toml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.want)
		}
	}
	c, err := Parse([]byte("probe = [{service = \"a.80\", kind = \"tcp\", send = \"x\"}]\n"), "t.toml")
	if err != nil || len(c.Probes) != 1 || keysOfKind[TCPKeys](t, c.Probes[0]).Send != "x" {
		t.Errorf("inline probe table: %+v, %v", c, err)
	}
}
