package probe

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/probecheck"
)

// runCheck builds a checker from a validated one-probe config and runs one
// attempt with the given timeout. internal/probecheck tests each kind's
// attempts; the tests here that need a real peer (dockerd, php-fpm) also
// run the Runner against it, so they check once through the config too.
func runCheck(t *testing.T, toml string, timeout time.Duration) (string, error) {
	t.Helper()
	c, err := Parse([]byte("[[probe]]\n"+toml), "test.toml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	chk, err := newChecker(&c.Probes[0])
	if err != nil {
		t.Fatalf("checker: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	o, err := chk.check(ctx)
	return o.Msg, err
}

// TestCheckerSettings: each kind's keys, defaults filled in, become the
// settings of its internal/probecheck kind.
func TestCheckerSettings(t *testing.T) {
	for _, tc := range []struct {
		toml string
		want probecheck.Checker
	}{
		{"service = \"web.8080\"\nkind = \"http\"\n",
			&probecheck.HTTP{Method: "GET", Address: "127.0.0.1:8080", Path: "/"}},
		{"service = \"web\"\nkind = \"http\"\naddress = \"[::1]:81\"\nmethod = \"HEAD\"\npath = \"/h\"\nhost = \"a.example\"\nexpect_status = [204, 301]\nexpect_body = \"ok\"\n",
			&probecheck.HTTP{Method: "HEAD", Address: "[::1]:81", Path: "/h", Host: "a.example", ExpectStatus: []int{204, 301}, ExpectBody: "ok"}},
		{"service = \"redis.6379\"\nkind = \"tcp\"\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\"\n",
			&probecheck.TCP{Address: "127.0.0.1:6379", Send: "PING\r\n", Expect: "+PONG"}},
		{"service = \"php\"\nkind = \"fastcgi\"\n",
			&probecheck.FastCGI{Network: "tcp", Address: DefaultFastCGIAddress, Script: DefaultFastCGIScript, ExpectBody: DefaultFastCGIExpect}},
		{"service = \"php\"\nkind = \"fastcgi\"\naddress = \"unix:/run/fpm.sock\"\npath = \"/fpm-ping\"\nexpect = \"ok\"\nexpect_status = [200, 204]\n",
			&probecheck.FastCGI{Network: "unix", Address: "/run/fpm.sock", Script: "/fpm-ping", ExpectStatus: []int{200, 204}, ExpectBody: "ok"}},
		{"service = \"php\"\nkind = \"fastcgi\"\naddress = \"/run/fpm.sock\"\n",
			&probecheck.FastCGI{Network: "unix", Address: "/run/fpm.sock", Script: DefaultFastCGIScript, ExpectBody: DefaultFastCGIExpect}},
		{"service = \"app\"\nkind = \"container\"\ncontainer = \"web\"\n",
			&probecheck.Container{Socket: DefaultDockerSocket, Name: "web"}},
		{"service = \"app\"\nkind = \"container\"\nsocket = \"/run/p.sock\"\nlabel = \"a=b\"\nmatch = \"any\"\n",
			&probecheck.Container{Socket: "/run/p.sock", Labels: []string{"a=b"}, Any: true}},
		{"service = \"app\"\nkind = \"container\"\nname_prefix = \"app-\"\nmatch = \"all\"\n",
			&probecheck.Container{Socket: DefaultDockerSocket, NamePrefix: "app-"}},
		{"service = \"db.3306\"\nkind = \"exec\"\ncommand = [\"/bin/check\", \"-v\"]\n",
			&probecheck.Exec{Command: []string{"/bin/check", "-v"}, Service: "db.3306"}},
		{"service = \"db.3306\"\nkind = \"exec\"\ncommand = [\"/bin/check\"]\noutput = \"agent\"\n",
			&probecheck.Exec{Command: []string{"/bin/check"}, Service: "db.3306", Agent: true}},
	} {
		s := mustParse(t, "[[probe]]\n"+tc.toml).Probes[0]
		chk, err := newChecker(&s)
		if err != nil {
			t.Fatalf("%s: %v", tc.toml, err)
		}
		got, ok := chk.(kindChecker)
		wantAgent := strings.Contains(tc.toml, `output = "agent"`)
		if !ok || !reflect.DeepEqual(got.Checker, tc.want) || got.agent != wantAgent {
			t.Errorf("%s: checker %#v, want %#v (agent %v)", tc.toml, chk, tc.want, wantAgent)
		}
	}
}
