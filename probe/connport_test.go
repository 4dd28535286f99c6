package probe

import (
	"maps"
	"strings"
	"testing"
)

func TestConfigConnPort(t *testing.T) {
	c, err := Parse([]byte(`
[[probe]]
service   = "web.8080"
kind      = "tcp"
conn_port = 443

[[probe]]
service   = "web.8080"
name      = "http"
kind      = "http"

[[probe]]
service = "db.5432"
kind    = "tcp"
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ConnPorts(); !maps.Equal(got, map[string]uint16{"web.8080": 443}) {
		t.Errorf("ConnPorts = %v", got)
	}
	// Changing conn_port alone does not make a probe "changed" (which
	// would restart it, pending).
	a, b := c.Probes[0], c.Probes[0]
	b.ConnPort = 8443
	if !a.Equal(&b) {
		t.Error("conn_port changes the probe's settings")
	}

	for _, tc := range []struct{ in, want string }{
		{"[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\nconn_port = 70000\n", "conn_port 70000: want 1..65535"},
		{"[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\nconn_port = -1\n", "conn_port -1: want 1..65535"},
		{"[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\nconn_port = 443\n[[probe]]\nservice = \"a.80\"\nname = \"b\"\nkind = \"tcp\"\nconn_port = 444\n",
			"t.toml:5: probe \"a.80/b\": conn_port 444, but line 1 says 443 for the same service"},
		{"[[probe]]\nservice = \"a.80\"\nkind = \"tcp\"\nconn_port = \"443\"\n", "t.toml:4:"},
	} {
		_, err := Parse([]byte(tc.in), "t.toml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.want)
		}
	}
	var nilCfg *Config
	if len(nilCfg.ConnPorts()) != 0 {
		t.Error("nil config has conn ports")
	}
}

func TestExampleConfigConnPort(t *testing.T) {
	c, err := LoadFile("../contrib/probes.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ConnPorts(); !maps.Equal(got, map[string]uint16{"app.8080": 443}) {
		t.Errorf("example conn ports %v", got)
	}
}
