package probe

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
)

func TestExampleConfigLoads(t *testing.T) {
	c, err := LoadFile("../contrib/probes.example.toml")
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if len(c.Probes) != 10 {
		t.Fatalf("probes = %d, want 10", len(c.Probes))
	}
	for _, s := range c.Probes {
		if _, err := newChecker(&s); err != nil {
			t.Errorf("%s: %v", s.ID(), err)
		}
		if s.Line == 0 {
			t.Errorf("%s: no line number", s.ID())
		}
	}
	sq := c.Probes[0]
	if sq.ID() != "squid.80/http" || sq.Interval.Duration != 2*time.Second || sq.Rise != 2 || sq.Fall != 3 || sq.Line != 14 {
		t.Errorf("first probe = %+v", sq)
	}
	redis := keysOfKind[TCPKeys](t, c.Probes[2])
	if redis.Address != "127.0.0.1:6379" || redis.Send != "PING\r\n" {
		t.Errorf("redis default address/send = %q %q", redis.Address, redis.Send)
	}
	if fd := keysOfKind[FastCGIKeys](t, c.Probes[4]); c.Probes[4].Name != "fpm-default" || fd.Address != DefaultFastCGIAddress || fd.Script != "/ping" || fd.ExpectBody != "pong" {
		t.Errorf("fastcgi with php-fpm's defaults = %+v %+v", c.Probes[4], fd)
	}
	if c5 := keysOfKind[ContainerKeys](t, c.Probes[5]); c5.Socket != "/var/run/docker.sock" || c5.Match != MatchAll || !c.Probes[9].VIP.IsValid() {
		t.Errorf("container socket %q match %q, vip %v", c5.Socket, c5.Match, c.Probes[9].VIP)
	}
	if cs := keysOfKind[ContainerKeys](t, c.Probes[6]); !slices.Equal(first(cs.labels()), []string{"com.docker.compose.project=shop", "com.docker.compose.service=app"}) || cs.Match != MatchAny || cs.Socket != DefaultDockerSocket {
		t.Errorf("container by label = %+v", cs)
	}
	if ag, ex := keysOfKind[ExecKeys](t, c.Probes[8]), keysOfKind[ExecKeys](t, c.Probes[7]); ag.Output != OutputAgent || ex.Output != OutputExit {
		t.Errorf("exec outputs %q %q", ex.Output, ag.Output)
	}
}

// keysOfKind returns s's keys, which must be a K.
func keysOfKind[K any, PK interface {
	*K
	Keys
}](t *testing.T, s Spec) PK {
	t.Helper()
	k, ok := s.Keys.(PK)
	if !ok {
		t.Fatalf("%s: keys %T, want *%T", s.ID(), s.Keys, *new(K))
	}
	return k
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string // substrings of the error
	}{
		{"unknown key", "[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\nadress = \"x\"\n",
			[]string{"t.toml:4: unknown key \"probe.adress\""}},
		{"unknown defaults key", "[defaults]\nintervall = \"1s\"\n",
			[]string{"t.toml:2: unknown key \"defaults.intervall\""}},
		{"syntax", "[[probe]]\nservice = a.80\n", []string{"t.toml:2:"}},
		{"wrong type", "[[probe]]\nservice = \"a.80\"\nrise = \"two\"\n", []string{"t.toml:3:"}},
		{"bad duration", "[defaults]\ninterval = \"5\"\n", []string{"t.toml:2:", "want a number with a unit"}},
		{"bad kind", "\n[[probe]]\nservice = \"a.80\"\nkind = \"icmp\"\n",
			[]string{`t.toml:2: probe "a.80/icmp": kind "icmp"`}},
		{"key of another kind", "[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\nscript = \"/x\"\n",
			[]string{`key "script" does not apply to kind "tcp"`}},
		{"bad service", "[[probe]]\nservice = \"../etc\"\nkind = \"tcp\"\naddress=\"127.0.0.1:1\"\n", []string{`service "../etc"`}},
		{"no address", "[[probe]]\nservice = \"a\"\nkind = \"http\"\n", []string{"address is required"}},
		{"timeout > interval", "[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\ninterval = \"1s\"\ntimeout = \"2s\"\n",
			[]string{"timeout 2s is longer than interval 1s"}},
		{"timeout in defaults > interval", "[defaults]\ntimeout = \"2s\"\n[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\ninterval = \"1s\"\n",
			[]string{"timeout 2s is longer than interval 1s"}},
		{"duplicate", "[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\n[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\n",
			[]string{"t.toml:4: probe \"a.80/tcp\": duplicate probe name (also at line 1)"}},
		{"bad vip", "[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\nonly_if_vip = \"x\"\n", []string{`only_if_vip "x"`}},
		{"fastcgi script", "[[probe]]\nservice = \"php\"\nkind = \"fastcgi\"\naddress = \"unix:rel\"\nscript = \"ping\"\n",
			[]string{"unix:/absolute/path", `script "ping"`}},
		{"fastcgi path and script", "[[probe]]\nservice = \"php\"\nkind = \"fastcgi\"\npath = \"/a\"\nscript = \"/b\"\nexpect = \"x\"\nexpect_body = \"y\"\n",
			[]string{"path and script name the same thing", "expect and expect_body name the same thing"}},
		{"container two ways", "[[probe]]\nservice = \"a\"\nkind = \"container\"\ncontainer = \"x\"\nlabel = \"a=b\"\nmatch = \"any\"\n",
			[]string{"set one of container", "match applies to label and name_prefix"}},
		{"container none", "[[probe]]\nservice = \"a\"\nkind = \"container\"\n", []string{"set one of container"}},
		{"container bad prefix", "[[probe]]\nservice = \"a\"\nkind = \"container\"\nname_prefix = \"-x/\"\nmatch = \"most\"\n",
			[]string{`name_prefix "-x/"`, `match "most": want all or any`}},
		{"container bad label", "[[probe]]\nservice = \"a\"\nkind = \"container\"\nlabel = \"=v\"\n", []string{`label "=v"`}},
		{"container label list not strings", "[[probe]]\nservice = \"a\"\nkind = \"container\"\nlabel = [\"a=b\", 3]\n", []string{`label 3: want key=value or a list of them`}},
		{"container empty label list", "[[probe]]\nservice = \"a\"\nkind = \"container\"\nlabel = []\n", []string{"set one of container"}},
		{"container label list with an empty one", "[[probe]]\nservice = \"a\"\nkind = \"container\"\nlabel = [\"a=b\", \"\"]\n", []string{`label "": want key or key=value`}},
		{"exec output", "[[probe]]\nservice = \"x\"\nkind = \"exec\"\ncommand = [\"/bin/true\"]\noutput = \"json\"\n", []string{`output "json": want exit or agent`}},
		{"output on http", "[[probe]]\nservice = \"x.80\"\nkind = \"http\"\noutput = \"agent\"\n", []string{`key "output" does not apply to kind "http"`}},
		{"exec relative", "[[probe]]\nservice = \"x\"\nkind = \"exec\"\ncommand = [\"check\"]\n", []string{"command:"}},
		{"bad rise", "[defaults]\nrise = 0\nfall = 101\n", []string{"[defaults]: fall 101"}},
		{"bad initial", "[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\ninitial = \"maybe\"\n", []string{`initial "maybe"`}},
		{"duplicate key", "[[probe]]\nservice = \"a.80\"\nrise = 1\nrise = 2\n", []string{"t.toml:4:1: key rise is already defined"}},
		{"bad status", "[[probe]]\nservice = \"a.80\"\nkind = \"http\"\nexpect_status = [99]\n", []string{"expect_status 99"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "t.toml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestFastCGIDefaults: php-fpm's own defaults (listen 127.0.0.1:9000,
// ping.path /ping, ping.response pong) need no keys, and
// fastcgi-healthcheck's names path and expect work.
func TestFastCGIDefaults(t *testing.T) {
	c, err := Parse([]byte("[[probe]]\nservice = \"php\"\nkind = \"fastcgi\"\n[[probe]]\nservice = \"php\"\nname = \"own\"\nkind = \"fastcgi\"\naddress = \"/run/php/fpm.sock\"\npath = \"/fpm-ping\"\nexpect = \"ok\"\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	d, o := keysOfKind[FastCGIKeys](t, c.Probes[0]), keysOfKind[FastCGIKeys](t, c.Probes[1])
	if d.Address != "127.0.0.1:9000" || d.Script != "/ping" || d.ExpectBody != "pong" {
		t.Errorf("defaults: address %q script %q expect_body %q", d.Address, d.Script, d.ExpectBody)
	}
	if o.Address != "/run/php/fpm.sock" || o.Script != "/fpm-ping" || o.ExpectBody != "ok" || o.Path != "" || o.Expect != "" {
		t.Errorf("path/expect: %+v", o)
	}
}

// TestConfigTimeoutFollowsShortInterval: a probe that sets only a short
// interval gets the built-in timeout cut to it (it used to be refused:
// "timeout 2s is longer than interval 1s", a timeout nobody wrote); a
// timeout that is written, here or in [defaults], is still checked.
func TestConfigTimeoutFollowsShortInterval(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []time.Duration // each probe's timeout
	}{
		{"[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\ninterval = \"1s\"\n[[probe]]\nservice = \"b.80\"\nkind = \"tcp\"\n", []time.Duration{time.Second, DefaultTimeout}},
		{"[defaults]\ninterval = \"500ms\"\n[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\n[[probe]]\nservice = \"b.80\"\nkind = \"tcp\"\ninterval = \"10s\"\n", []time.Duration{500 * time.Millisecond, DefaultTimeout}},
		{"[defaults]\ntimeout = \"300ms\"\n[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\ninterval = \"1s\"\n", []time.Duration{300 * time.Millisecond}},
	} {
		c, err := Parse([]byte(tc.in), "t.toml")
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		for i, want := range tc.want {
			if got := c.Probes[i].Timeout.Duration; got != want {
				t.Errorf("%q: probe %d timeout %s, want %s", tc.in, i, got, want)
			}
		}
	}
}

func TestConfigEmpty(t *testing.T) {
	c, err := Parse(nil, "empty.toml")
	if err != nil || len(c.Probes) != 0 || c.Defaults.Interval.Duration != DefaultInterval {
		t.Fatalf("empty config: %+v, %v", c, err)
	}
}

// FuzzParse: parsing never panics, and an accepted config only holds probes
// with a valid service name and a buildable checker.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[defaults]\ninterval = \"1s\"\n[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\n"))
	f.Add([]byte("[[probe]]\nservice = \"php\"\nkind = \"fastcgi\"\naddress = \"/x.sock\"\nscript = \"/p\"\n"))
	f.Add([]byte("[[probe]]\nservice = \"x\"\nkind = \"exec\"\ncommand = [\"/bin/true\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "f.toml")
		if err != nil {
			return
		}
		for i := range c.Probes {
			s := &c.Probes[i]
			if !cache.ValidName(s.Service) || s.Name == "" {
				t.Fatalf("accepted probe %+v", s)
			}
			if _, err := newChecker(s); err != nil {
				t.Fatalf("accepted probe %s cannot run: %v", s.ID(), err)
			}
		}
	})
}

// BenchmarkParse: a file of 1,000 http probes (go test -bench Parse ./probe).
func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "[[probe]]\nservice = \"s%d.80\"\nkind = \"http\"\npath = \"/x\"\nexpect_status = [200]\ninterval = \"30s\"\n", i)
	}
	data := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "b.toml"); err != nil {
			b.Fatal(err)
		}
	}
}

func first[T, U any](t T, _ U) T { return t }
