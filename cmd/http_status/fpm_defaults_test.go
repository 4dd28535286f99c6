//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fpmDefaultsScript runs inside a network namespace of its own, where
// 127.0.0.1:9000 (php-fpm's default listen address) is free whatever the
// host runs: php-fpm with its stock ping settings, the daemon with a
// fastcgi probe that sets no address, script or expected body, and curl
// polling /status and /health (each poll has a deadline).
const fpmDefaultsScript = `set -u
ip link set lo up || exit 1
mkdir -p "$DIR"
: > "$DIR/php.9000"
"$FPM" -n -F -y "$CONF" $FPM_ROOT &
fpm=$!
"$BIN" --dir "$DIR" --port 8001 --config "$PROBES" --vips=false --log-format=json 2>"$LOG" &
bin=$!
code() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:8001$1"; }
wait_code() {
	i=0
	while [ $i -lt 400 ]; do
		c=$(code "$1")
		if [ "$c" = "$2" ]; then echo "$1 $c"; return 0; fi
		sleep 0.05
		i=$((i + 1))
	done
	echo "$1 $c (want $2)"
}
wait_code '/status?SERVICE=php&PORT=9000' 200
wait_code '/health' 200
kill $fpm
wait $fpm
wait_code '/status?SERVICE=php&PORT=9000' 503
echo "body: $(curl -s 'http://127.0.0.1:8001/status?SERVICE=php&PORT=9000' | tr '\n' '|')"
kill $bin
wait $bin
echo "daemon exit $?"
`

// TestFastCGIDefaultsPHPFPM: a fastcgi probe with no address, script or
// expected body checks php-fpm as php-fpm ships (listen 127.0.0.1:9000,
// ping.path /ping, ping.response pong), end to end through the daemon,
// and /health answers like /healthz. It runs in its own network namespace
// (root, unshare, ip) so that port 9000 is free.
func TestFastCGIDefaultsPHPFPM(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts php-fpm; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace of its own (127.0.0.1:9000 must be free)")
	}
	var fpm string
	for _, name := range []string{"php-fpm8.2", "php-fpm", "php-fpm8.3", "php-fpm8.4"} {
		if p, err := exec.LookPath(name); err == nil {
			fpm = p
			break
		}
		if _, err := os.Stat("/usr/sbin/" + name); err == nil {
			fpm = "/usr/sbin/" + name
			break
		}
	}
	if fpm == "" {
		t.Skip("php-fpm not installed (Debian: apt-get install php-fpm)")
	}
	for _, tool := range []string{"unshare", "ip", "curl"} {
		toolPath(t, tool, "the php-fpm defaults test runs in its own network namespace")
	}
	tmp := t.TempDir()
	conf := filepath.Join(tmp, "fpm.conf")
	// php-fpm's defaults, written out: www.conf ships "listen =
	// 127.0.0.1:9000" upstream and the ping lines commented out with these
	// values.
	if err := os.WriteFile(conf, []byte(`[global]
pid = `+tmp+`/fpm.pid
error_log = `+tmp+`/fpm.log
daemonize = no
[www]
listen = 127.0.0.1:9000
pm = static
pm.max_children = 1
ping.path = /ping
ping.response = pong
`), 0o644); err != nil {
		t.Fatal(err)
	}
	probes := filepath.Join(tmp, "probes.toml")
	if err := os.WriteFile(probes, []byte(`[[probe]]
service = "php.9000"
kind = "fastcgi"
interval = "200ms"
timeout = "200ms"
rise = 1
fall = 1
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--net", "sh", "-c", fpmDefaultsScript)
	cmd.Env = append(cleanEnv(), "DIR="+filepath.Join(tmp, "flags"), "FPM="+fpm, "CONF="+conf, "FPM_ROOT=-R",
		"BIN="+testBinary(t), "PROBES="+probes, "LOG="+filepath.Join(tmp, "daemon.log"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unshare: %v\n%s", err, out)
	}
	got := string(out)
	t.Logf("in the namespace:\n%s", got)
	for _, want := range []string{
		"/status?SERVICE=php&PORT=9000 200\n",
		"/health 200\n",
		"/status?SERVICE=php&PORT=9000 503\n",
		"reason: probe fastcgi: dial tcp 127.0.0.1:9000: connect: connection refused|",
		"daemon exit 0\n",
	} {
		if !strings.Contains(got, want) {
			logs, _ := os.ReadFile(filepath.Join(tmp, "daemon.log"))
			fl, _ := os.ReadFile(filepath.Join(tmp, "fpm.log"))
			t.Fatalf("output lacks %q:\n%s\ndaemon log:\n%s\nphp-fpm log:\n%s", want, got, logs, fl)
		}
	}
}
