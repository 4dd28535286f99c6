//go:build linux

package daemon

import (
	"net"
	"strings"
	"testing"
)

func TestFlagsVsSocket(t *testing.T) {
	v4 := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8001}
	v6 := &net.TCPAddr{IP: net.ParseIP("::"), Port: 8001}
	for _, tc := range []struct {
		got     net.Addr
		ip      string
		ipSet   bool
		port    int
		portSet bool
		want    string // in the short form; "" for no warning
	}{
		{v4, "127.0.0.1", false, 8001, false, ""},
		{v4, "0.0.0.0", false, 9000, false, ""}, // defaults never conflict
		{v4, "127.0.0.1", true, 8001, true, ""},
		{v4, "::ffff:127.0.0.1", true, 8001, true, ""},
		{v4, "0.0.0.0", true, 8001, false, "http on 127.0.0.1:8001 from systemd, not --ip 0.0.0.0 "},
		{v4, "127.0.0.1", true, 9000, true, "not --port 9000 "},
		{v4, "127.0.0.1", false, 0, true, ""}, // port 0: any
		{v6, "::", true, 8001, true, ""},
		{v6, "[::]", true, 8001, true, ""},
		{v6, "0.0.0.0", true, 8001, true, "http on [::]:8001 from systemd, not --ip 0.0.0.0 "},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, "0.0.0.0", true, 1, true, ""},
	} {
		warning, short := flagsVsSocket("http", tc.got, tc.ip, tc.ipSet, "--ip", tc.port, tc.portSet, "--port")
		if (tc.want == "") != (short == "") || !strings.Contains(short, tc.want) || (warning == "") != (short == "") {
			t.Errorf("%v vs ip %q (set %v) port %d (set %v): %q / %q, want %q", tc.got, tc.ip, tc.ipSet, tc.port, tc.portSet, short, warning, tc.want)
		}
	}
}
