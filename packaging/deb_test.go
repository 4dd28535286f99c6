package packaging_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/http-status/http_status/internal/testenv"
)

const pkgName = "http-status"

var (
	pkgMu    sync.Mutex
	pkgBuilt = map[string]string{} // "version kind" -> path
)

// needNfpm skips the test when nfpm (a tool dependency in go.mod, run by
// build.sh as `go tool nfpm`) is neither in the module cache nor
// downloadable: the one thing these tests need the network for, once.
func needNfpm(t *testing.T) {
	t.Helper()
	cmd := exec.Command("go", "tool", "-n", "nfpm")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	for _, offline := range []string{"module lookup disabled", "dial tcp", "no such host", "network is unreachable", "connection refused", "i/o timeout"} {
		if strings.Contains(string(out), offline) {
			t.Skipf("nfpm is not in the module cache and cannot be downloaded (run `go mod download` once with network): %s", strings.TrimSpace(string(out)))
		}
	}
	t.Fatalf("go tool -n nfpm: %v\n%s", err, out)
}

// buildPackages runs packaging/build.sh once for one version and the kinds
// (deb, rpm) not built yet, and returns each kind's package. One run builds
// the binary once for every kind.
func buildPackages(t *testing.T, version string, kinds ...string) map[string]string {
	t.Helper()
	needNfpm(t)
	pkgMu.Lock()
	defer pkgMu.Unlock()
	var missing []string
	for _, k := range kinds {
		if _, ok := pkgBuilt[version+" "+k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		out := filepath.Join(tmpRoot, "pkgs-"+version)
		cmd := exec.Command(filepath.Join(repoRoot, "packaging", "build.sh"), missing...)
		cmd.Env = append(os.Environ(), "OUT_DIR="+out, "VERSION="+version)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		if err != nil {
			t.Fatalf("packaging/build.sh %v: %v\n%s", missing, err, stderr.String())
		}
		paths := strings.Fields(string(stdout))
		if len(paths) != len(missing) {
			t.Fatalf("build.sh %v printed %q, want one package each", missing, stdout)
		}
		for i, k := range missing {
			if !strings.HasSuffix(paths[i], "."+k) {
				t.Fatalf("build.sh printed %q for %s", paths[i], k)
			}
			pkgBuilt[version+" "+k] = paths[i]
		}
	}
	got := map[string]string{}
	for _, k := range kinds {
		got[k] = pkgBuilt[version+" "+k]
	}
	return got
}

// shipped is a regular file the packages install.
type shipped struct {
	path     string
	mode     os.FileMode
	conffile bool
	src      string // repository file it must equal, if any
}

// expectedFiles lists what the package of kind (deb, rpm) must install:
// exactly these regular files.
func expectedFiles(t *testing.T, kind string) []shipped {
	t.Helper()
	f := []shipped{
		{path: "/usr/sbin/http_status", mode: 0o755},
		{path: "/lib/systemd/system/http_status.service", mode: 0o644, src: "systemd/http_status.service"},
		{path: "/lib/systemd/system/http_status.socket", mode: 0o644, src: "systemd/http_status.socket"},
		{path: "/usr/lib/sysusers.d/http_status.conf", mode: 0o644, src: "systemd/http_status.sysusers"},
		{path: "/usr/lib/tmpfiles.d/http_status.conf", mode: 0o644, src: "packaging/http_status.tmpfiles"},
		{path: "/etc/logrotate.d/http_status", mode: 0o644, conffile: true, src: "packaging/http_status.logrotate"},
		{path: "/usr/share/http_status/upstart/http_status.conf", mode: 0o644, src: "contrib/upstart/http_status.conf"},
		{path: "/usr/share/man/man8/http_status.8.gz", mode: 0o644},
		{path: "/usr/share/doc/http-status/README.md", mode: 0o644, src: "README.md"},
		{path: "/usr/share/doc/http-status/examples/http_status.default", mode: 0o644, src: "packaging/http_status.default"},
		{path: "/usr/share/doc/http-status/copyright", mode: 0o644}, // made by copyright.sh: checkCopyright
	}
	if kind == "deb" {
		f = append(f,
			shipped{path: "/etc/default/http_status", mode: 0o644, conffile: true, src: "packaging/http_status.default"},
			shipped{path: "/etc/init.d/http_status", mode: 0o755, conffile: true, src: "contrib/init.d/http_status"},
			shipped{path: "/usr/share/lintian/overrides/http-status", mode: 0o644, src: "packaging/http-status.lintian-overrides"},
			shipped{path: "/usr/share/doc/http-status/changelog.Debian.gz", mode: 0o644}) // made by build.sh: checkChangelog
	} else {
		f = append(f,
			shipped{path: "/etc/sysconfig/http_status", mode: 0o644, conffile: true, src: "packaging/http_status.default"},
			shipped{path: "/usr/share/http_status/init.d/http_status", mode: 0o755, src: "contrib/init.d/http_status"},
			shipped{path: "/usr/share/licenses/http-status/LICENSE", mode: 0o644, src: "LICENSE"})
	}
	// Optional inputs: contrib/http_status.functions (init-script helpers)
	// and example files.
	if _, err := os.Stat(filepath.Join(repoRoot, "contrib", "http_status.functions")); err == nil {
		f = append(f, shipped{path: "/usr/share/http_status/http_status.functions", mode: 0o644, src: "contrib/http_status.functions"})
	}
	for _, dir := range []string{"packaging/examples", "contrib/examples"} {
		ents, _ := os.ReadDir(filepath.Join(repoRoot, dir))
		for _, e := range ents {
			if e.Type().IsRegular() {
				f = append(f, shipped{path: "/usr/share/doc/http-status/examples/" + e.Name(), mode: 0o644, src: dir + "/" + e.Name()})
			}
		}
	}
	return f
}

// The package versions the tests build: v1 is installed and upgraded to
// v2 (TestDebPackage); v2's .deb and .rpm are the ones whose contents are
// checked without installing.
const v1, v2 = "1.0.0+test1", "1.0.0+test2"

// installEnv is the environment variable that lets TestDebPackage install
// the package on this machine. .ci/run sets it.
const installEnv = "HTTP_STATUS_TEST_INSTALL"

// TestDebContents builds the .deb and checks it without installing
// anything on this machine: control fields, the file list (modes, owners,
// conffiles, maintainer scripts), every file's content against the
// repository, the copyright file, the packaged binary (stamped, serving),
// and `systemd-analyze verify` of the units at their installed paths in
// the unpacked tree (--root), next to the packaged binary. TestDebPackage
// goes on to install it, when asked to.
func TestDebContents(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: builds a package")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed (Debian package dpkg)")
	}
	deb := buildPackages(t, v2, "deb", "rpm")["deb"]

	// Control fields.
	for field, want := range map[string]string{
		"Package":    pkgName,
		"Version":    v2 + "-1",
		"Maintainer": "http_status maintainers",
		"Homepage":   "https://github.com/http-status/http_status",
	} {
		if got := strings.TrimSpace(mustRun(t, 0, nil, "dpkg-deb", "-f", deb, field)); got != want {
			t.Errorf("control field %s: %q, want %q", field, got, want)
		}
	}
	// The synopsis: no full stop (lintian synopsis-is-a-sentence).
	if desc, _, _ := strings.Cut(mustRun(t, 0, nil, "dpkg-deb", "-f", deb, "Description"), "\n"); desc != "Health-check responder for load balancers" {
		t.Errorf("synopsis %q", desc)
	}
	ctrl := t.TempDir()
	mustRun(t, 0, nil, "dpkg-deb", "-e", deb, ctrl)
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		if st, err := os.Stat(filepath.Join(ctrl, script)); err != nil || st.Mode().Perm()&0o111 == 0 {
			t.Errorf("maintainer script %s: %v", script, err)
		}
	}
	conf, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	checkConffiles(t, strings.Fields(string(conf)), expectedFiles(t, "deb"))

	// The file list: exactly the expected regular files, owned by root.
	want := expectedFiles(t, "deb")
	wantSet := map[string]shipped{}
	for _, w := range want {
		wantSet[w.path] = w
	}
	listed := map[string]bool{}
	for _, l := range strings.Split(mustRun(t, 0, nil, "dpkg-deb", "-c", deb), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || f[0][0] != '-' {
			continue // directories, the empty last line
		}
		path := strings.TrimPrefix(f[len(f)-1], ".")
		listed[path] = true
		w, ok := wantSet[path]
		if !ok {
			t.Errorf("unexpected file in the package: %s", path)
			continue
		}
		if f[0] != os.FileMode(w.mode).String() || (f[1] != "root/root" && f[1] != "0/0") { // 0/0: nfpm's own (the changelog)
			t.Errorf("%s: %s %s, want %v root/root", path, f[0], f[1], os.FileMode(w.mode))
		}
	}
	for _, w := range want {
		if !listed[w.path] {
			t.Errorf("the package lacks %s", w.path)
		}
	}

	// The content, unpacked into a temp tree.
	root := t.TempDir()
	mustRun(t, 0, nil, "dpkg-deb", "-x", deb, root)
	for _, w := range want {
		checkFile(t, root, w)
	}
	checkManPage(t, root)
	checkCopyright(t, filepath.Join(root, "usr/share/doc/http-status/copyright"), "deb")
	checkChangelog(t, filepath.Join(root, "usr/share/doc/http-status/changelog.Debian.gz"))
	checkLintian(t, deb)
	// On a host booted with systemd, Debian's init-functions send
	// "/etc/init.d/http_status restart" to systemctl; without them it
	// starts a second daemon outside systemd (lintian:
	// init.d-script-does-not-source-init-functions).
	if !regexp.MustCompile(`(?m)^\s*\.\s+/lib/lsb/init-functions\s*$`).MatchString(readString(t, filepath.Join(root, "etc/init.d/http_status"))) {
		t.Error("/etc/init.d/http_status does not source /lib/lsb/init-functions")
	}
	bin := filepath.Join(root, "usr/sbin/http_status")
	if out := mustRun(t, 0, nil, bin, "--version"); !strings.HasPrefix(out, "http_status "+v2+"\ncommit ") {
		t.Errorf("packaged binary --version: %q", out)
	}
	runInstalledBinary(t, bin)
	verifyUnits(t, root)
}

// verifyUnits runs systemd-analyze verify on the units as installed under
// root (the unpacked package; "" is this machine): ExecStart= must name an
// executable there. verify also wants the targets the units are ordered
// against and /bin/kill (ExecReload=), which a package tree lacks: they are
// copied in from this machine first.
func verifyUnits(t *testing.T, root string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed (Debian package systemd): units not verified")
		return
	}
	args := []string{"verify"}
	if root != "" {
		for _, dir := range []string{"/lib/systemd/system", "/usr/lib/systemd/system"} {
			targets, _ := filepath.Glob(filepath.Join(dir, "*.target"))
			for _, f := range targets {
				dst := filepath.Join(root, "lib/systemd/system", filepath.Base(f))
				if _, err := os.Stat(dst); err == nil {
					continue
				}
				if b, err := os.ReadFile(f); err == nil {
					writeFile(t, dst, string(b))
				}
			}
		}
		if b, err := os.ReadFile("/bin/kill"); err == nil {
			if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "bin/kill"), b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		args = append(args, "--root="+root)
	}
	args = append(args, "/lib/systemd/system/http_status.service", "/lib/systemd/system/http_status.socket")
	out, code := run(t, []string{"SYSTEMD_LOG_LEVEL=notice"}, analyze, args...)
	if code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
	}
	return string(b)
}

// checkConffiles compares a package's config files with the expected ones.
func checkConffiles(t *testing.T, got []string, want []shipped) {
	t.Helper()
	var wantConf []string
	for _, w := range want {
		if w.conffile {
			wantConf = append(wantConf, w.path)
		}
	}
	got = append([]string(nil), got...)
	sort.Strings(got)
	sort.Strings(wantConf)
	if strings.Join(got, " ") != strings.Join(wantConf, " ") {
		t.Errorf("conffiles %v, want %v", got, wantConf)
	}
}

// checkCopyright checks the copyright file (packaging/copyright.sh) of a
// package of kind (deb, rpm): the machine-readable format, http_status
// under Apache-2.0, and a license for the Go standard library and for every
// module linked into the binary. The .rpm's quotes the whole LICENSE; the
// .deb's points to Debian's copy of the Apache-2.0 text and quotes none
// (Debian policy 12.5).
func checkCopyright(t *testing.T, path, kind string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	text := string(b)
	lic, _ := os.ReadFile(filepath.Join(repoRoot, "LICENSE"))
	var ours strings.Builder
	if kind == "deb" {
		ours.WriteString(" On Debian systems the complete text of the Apache License, Version 2.0,\n is in /usr/share/common-licenses/Apache-2.0.\n")
		if strings.Contains(text, "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION") {
			t.Errorf("%s quotes an Apache-2.0 text (lintian copyright-file-contains-full-apache-2-license)", path)
		}
	} else {
		for _, l := range strings.Split(strings.TrimSuffix(string(lic), "\n"), "\n") {
			if l = strings.TrimRight(l, " \t"); l == "" {
				l = "."
			}
			ours.WriteString(" " + l + "\n")
		}
	}
	for _, want := range []string{
		"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n",
		"Source: https://github.com/http-status/http_status\n",
		"\nFiles: *\nCopyright: http_status maintainers\nLicense: Apache-2.0\n" + ours.String(),
		"\nFiles: vendor/std/*\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %.200q", path, want)
		}
	}
	if strings.Contains(text, "\n\n\n") || strings.Contains(text, "License: other") {
		t.Errorf("%s: an empty line inside a field, or a license not recognised", path)
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}", "./cmd/http_status")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	mods := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(mods) < 5 {
		t.Fatalf("go list found %d modules: %q", len(mods), out)
	}
	for _, m := range mods {
		path, version, _ := strings.Cut(m, " ")
		if !strings.Contains(text, "\nFiles: vendor/"+path+"/*\nCopyright: the authors of "+path+" "+version+"\nLicense: ") {
			t.Errorf("%s has no license for module %s %s, which the binary links", filepath.Base(path), path, version)
		}
	}
}

// TestDebPackage installs the .deb on this machine with dpkg -i, checks
// every installed file, the user, the status directory, the installed
// binary and units, upgrades it with a running daemon, then removes and
// purges it. Because it changes the machine (a system user that purge
// keeps, rc links, a daemon started by the package), it runs only when
// HTTP_STATUS_TEST_INSTALL=1 (.ci/run sets it), as root, on a host not
// booted with systemd (the package would enable and start the real
// service). Without it, TestDebContents still checks the package.
func TestDebPackage(t *testing.T) {
	switch {
	case testing.Short():
		t.Skip("-short: builds and installs a package")
	case os.Getenv(installEnv) != "1":
		t.Skip("installs the .deb on this machine with dpkg -i; set " + installEnv + "=1 to run it (CI does). TestDebContents checks the package without installing it")
	case os.Geteuid() != 0:
		t.Skip("installs a .deb: needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed")
	}
	if st, err := os.Stat("/run/systemd/system"); err == nil && st.IsDir() {
		t.Skip("this host runs systemd: installing would enable and start the real service")
	}
	deb1 := buildPackages(t, v1, "deb")["deb"]
	deb2 := buildPackages(t, v2, "deb", "rpm")["deb"] // the rpm for TestRPMFileList, in the same build

	purge := func() {
		if _, code := run(t, nil, "dpkg", "-s", pkgName); code == 0 {
			killPidfile("/run/http_status.pid")
			mustRun(t, 0, nil, "dpkg", "--purge", pkgName)
		}
	}
	purge() // a previous run may have left it
	t.Cleanup(func() {
		killPidfile("/run/http_status.pid")
		purge()
	})
	dpkgInstall := []string{"--force-confold", "--force-confdef", "-i"}

	// Install.
	mustRun(t, 0, nil, "dpkg", append(dpkgInstall, deb1)...)
	want := expectedFiles(t, "deb")
	listed := map[string]bool{}
	for _, l := range strings.Split(mustRun(t, 0, nil, "dpkg", "-L", pkgName), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			listed[l] = true
		}
	}
	wantSet := map[string]bool{}
	for _, w := range want {
		wantSet[w.path] = true
		if !listed[w.path] {
			t.Errorf("dpkg -L lacks %s", w.path)
		}
		checkFile(t, "", w)
	}
	for p := range listed {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && !wantSet[p] { // Stat: /lib may be a symlink to usr/lib
			t.Errorf("unexpected file in the package: %s", p)
		}
	}
	var conf []string
	for _, l := range strings.Split(mustRun(t, 0, nil, "dpkg-query", "-W", "-f=${Conffiles}\n", pkgName), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			conf = append(conf, f[0])
		}
	}
	checkConffiles(t, conf, want)
	checkCopyright(t, "/usr/share/doc/http-status/copyright", "deb")

	// The man page is the committed one, and man finds it.
	checkManPage(t, "")

	// The user and the status directory.
	u, err := user.Lookup("http_status")
	if err != nil {
		t.Fatalf("user http_status: %v", err)
	}
	checkStatusDir(t, u)

	// The installed binary: stamped version, and it serves.
	out := mustRun(t, 0, nil, "/usr/sbin/http_status", "--version")
	if !strings.HasPrefix(out, "http_status "+v1+"\ncommit ") {
		t.Errorf("--version: %q", out)
	}
	runInstalledBinary(t, "/usr/sbin/http_status")

	// The installed units.
	verifyUnits(t, "")

	// Upgrade with a running daemon (started by the installed SysV
	// script, as on a host without systemd), an edited config and a flag.
	port := testenv.FreePort(t)
	logf := filepath.Join(t.TempDir(), "http_status.log")
	edited := "# local edit\nHTTP_STATUS_OPTS=\"--ip 127.0.0.1 --port " + strconv.Itoa(port) + " --vips=false\"\nHTTP_STATUS_LOG=" + logf + "\n"
	writeFile(t, "/etc/default/http_status", edited)
	mustRun(t, 0, nil, "/etc/init.d/http_status", "start")
	pid := readPid("/run/http_status.pid")
	writeFile(t, "/run/http_status/pkgtest.80", "")
	waitStatus(t, port, "SERVICE=pkgtest&PORT=80", 200)

	mustRun(t, 0, nil, "dpkg", append(dpkgInstall, deb2)...)
	if b, _ := os.ReadFile("/etc/default/http_status"); string(b) != edited {
		t.Errorf("the upgrade replaced the edited /etc/default/http_status:\n%s", b)
	}
	if out := mustRun(t, 0, nil, "/usr/sbin/http_status", "--version"); !strings.HasPrefix(out, "http_status "+v2+"\n") {
		t.Errorf("after upgrade, --version: %q", out)
	}
	if npid := readPid("/run/http_status.pid"); npid == pid {
		// postinstall restarts through invoke-rc.d, which obeys
		// policy-rc.d; containers often forbid service starts there.
		if _, code := run(t, nil, "/usr/sbin/policy-rc.d", "http_status", "try-restart"); code != 101 {
			t.Fatalf("the upgrade did not restart the daemon (pid %d) and no policy-rc.d forbids it", pid)
		}
		t.Log("policy-rc.d forbids restarts here: restarting by hand as an operator would")
		mustRun(t, 0, nil, "/etc/init.d/http_status", "restart")
	}
	npid := readPid("/run/http_status.pid")
	if npid == pid || !alive(npid) {
		t.Fatalf("after the upgrade and restart: pid %d -> %d (alive %v)", pid, npid, alive(npid))
	}
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(npid) + "/exe"); err != nil || exe != "/usr/sbin/http_status" {
		t.Errorf("the daemon runs %q (%v), want the upgraded /usr/sbin/http_status", exe, err)
	}
	waitStatus(t, port, "SERVICE=pkgtest&PORT=80", 200) // the flag survived

	// Remove: the daemon stops; only the config files stay (and, like
	// them, the SysV runlevel links and the flags in /run/http_status).
	mustRun(t, 0, nil, "dpkg", "-r", pkgName)
	if alive(npid) {
		t.Errorf("daemon %d still running after dpkg -r", npid)
	}
	if _, err := os.Stat("/run/http_status.pid"); !os.IsNotExist(err) {
		t.Errorf("pidfile after dpkg -r: %v", err)
	}
	for _, w := range want {
		_, err := os.Lstat(w.path)
		if w.conffile && err != nil {
			t.Errorf("dpkg -r removed the config file %s", w.path)
		}
		if !w.conffile && !os.IsNotExist(err) {
			t.Errorf("dpkg -r left %s", w.path)
		}
	}
	for _, d := range []string{"/usr/share/http_status", "/usr/share/doc/http-status"} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("dpkg -r left the directory %s", d)
		}
	}
	if out := mustRun(t, 0, nil, "dpkg-query", "-W", "-f=${Status}", pkgName); out != "deinstall ok config-files" {
		t.Errorf("after dpkg -r: status %q", out)
	}
	if _, err := os.Stat("/run/http_status/pkgtest.80"); err != nil {
		t.Errorf("dpkg -r removed the flags: %v", err)
	}

	// Install again after the removal: dpkg configures it with the
	// version it had, as for an upgrade, but prerm stopped the daemon, so
	// the package must start it as on a first install (it stayed stopped).
	out = mustRun(t, 0, nil, "dpkg", append(dpkgInstall, deb2)...)
	if rpid := readPid("/run/http_status.pid"); !alive(rpid) {
		// invoke-rc.d says so, and exits 0, when policy-rc.d forbids it.
		if !strings.Contains(out, "policy-rc.d denied execution of start.") {
			t.Fatalf("installed again after dpkg -r, the daemon is not running (pidfile: %d) and postinstall did not try to start it:\n%s", rpid, out)
		}
		t.Log("policy-rc.d forbids starts here: starting by hand as an operator would")
		mustRun(t, 0, nil, "/etc/init.d/http_status", "start")
	}
	waitStatus(t, port, "SERVICE=pkgtest&PORT=80", 200)
	if _, err := os.Stat("/var/lib/http-status"); !os.IsNotExist(err) {
		t.Errorf("after installing again, the removal mark is left: %v", err)
	}

	// Purge: nothing left.
	mustRun(t, 0, nil, "dpkg", "-P", pkgName)
	for _, w := range want {
		if _, err := os.Lstat(w.path); !os.IsNotExist(err) {
			t.Errorf("dpkg -P left %s", w.path)
		}
	}
	left, _ := filepath.Glob("/etc/rc?.d/[SK][0-9][0-9]http_status")
	for _, p := range []string{"/run/http_status", "/var/lib/http-status", "/etc/default/http_status.dpkg-old", "/etc/default/http_status.dpkg-dist"} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		t.Errorf("dpkg -P left %v", left)
	}
	if _, code := run(t, nil, "dpkg", "-s", pkgName); code == 0 {
		t.Error("dpkg -s still knows the package after purge")
	}
}

// checkFile checks one installed file under root ("" for this machine):
// regular, owned by root, mode, and content when it comes straight from
// the repository.
func checkFile(t *testing.T, root string, w shipped) {
	t.Helper()
	path := filepath.Join("/", root, w.path)
	st, err := os.Lstat(path)
	if err != nil {
		t.Errorf("installed file: %v", err)
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	if !st.Mode().IsRegular() || st.Mode().Perm() != w.mode || (root == "" && (sys.Uid != 0 || sys.Gid != 0)) {
		t.Errorf("%s: mode %v uid %d gid %d, want a regular file %v root:root", w.path, st.Mode(), sys.Uid, sys.Gid, w.mode)
	}
	if w.src == "" {
		return
	}
	got, err1 := os.ReadFile(path)
	src, err2 := os.ReadFile(filepath.Join(repoRoot, w.src))
	if err1 != nil || err2 != nil || !bytes.Equal(got, src) {
		t.Errorf("%s differs from %s (%v, %v)", w.path, w.src, err1, err2)
	}
}

// checkChangelog checks the .deb's changelog (made by build.sh): one entry,
// this version, in Debian's format.
func checkChangelog(t *testing.T, path string) {
	t.Helper()
	out := mustRun(t, 0, nil, "sh", "-c", "gzip -dc < \"$1\"", "sh", path)
	head, _, _ := strings.Cut(out, "\n")
	if want := pkgName + " (" + v2 + "-1) unstable; urgency=medium"; head != want {
		t.Errorf("changelog's first line %q, want %q", head, want)
	}
	if !strings.Contains(out, "\n  * Built from commit ") || !strings.Contains(out, "\n -- http_status maintainers  ") {
		t.Errorf("changelog:\n%s", out)
	}
}

// lintianEnv asks TestDebContents to run lintian (7-8 s on 2 cores, too
// slow for the quick suite); .ci/run sets it.
const lintianEnv = "HTTP_STATUS_TEST_LINTIAN"

// checkLintian runs lintian on the .deb, when asked (lintianEnv=1) and it is
// installed: no error or
// warning but those that are the builder's to settle, the maintainer's
// missing address (packaging/build.sh's MAINTAINER, README "Packages"):
// lintian's malformed-contact, and the changelog's trailer that lacks it.
func checkLintian(t *testing.T, deb string) {
	t.Helper()
	if os.Getenv(lintianEnv) != "1" {
		t.Logf("lintian not run: set %s=1 (.ci/run does)", lintianEnv)
		return
	}
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Errorf("%s=1 but lintian is not installed (Debian package lintian)", lintianEnv)
		return
	}
	out, _ := exec.Command("lintian", "--tag-display-limit", "0", deb).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		builders := strings.HasSuffix(l, " malformed-contact Maintainer http_status") ||
			strings.Contains(l, " syntax-error-in-debian-changelog \"badly formatted trailer line\" ") ||
			strings.Contains(l, " syntax-error-in-debian-changelog \"found eof where expected more change data or trailer\" ")
		if (strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ")) && !builders {
			t.Errorf("lintian: %s", l)
		}
	}
}

// checkManPage checks the man page under root ("" for this machine) is the
// committed one, and, installed, that man finds it.
func checkManPage(t *testing.T, root string) {
	t.Helper()
	f, err := os.Open(filepath.Join("/", root, "usr/share/man/man8/http_status.8.gz"))
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Errorf("man page: %v", err)
		return
	}
	got, err := io.ReadAll(zr)
	src, _ := os.ReadFile(filepath.Join(repoRoot, "contrib", "http_status.8"))
	if err != nil || !bytes.Equal(got, src) {
		t.Errorf("installed man page differs from contrib/http_status.8 (%v)", err)
	}
	if _, err := exec.LookPath("man"); err == nil && root == "" {
		out := mustRun(t, 0, []string{"MANPAGER=cat", "MANWIDTH=80"}, "man", "8", "http_status")
		if !strings.Contains(out, "OPTIONS") || !strings.Contains(out, "--pidfile") {
			t.Errorf("man 8 http_status:\n%s", out)
		}
	}
}

func checkStatusDir(t *testing.T, u *user.User) {
	t.Helper()
	st, err := os.Stat("/run/http_status")
	if err != nil {
		t.Errorf("status directory: %v", err)
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || st.Mode().Perm() != 0o775 || strconv.Itoa(int(sys.Uid)) != u.Uid || strconv.Itoa(int(sys.Gid)) != u.Gid {
		t.Errorf("/run/http_status: mode %v owner %d:%d, want a 0775 directory owned by http_status (%s:%s)", st.Mode(), sys.Uid, sys.Gid, u.Uid, u.Gid)
	}
}

// runInstalledBinary runs the packaged binary bin on a temp dir and a
// free port and checks /status follows a flag.
func runInstalledBinary(t *testing.T, bin string) {
	t.Helper()
	dir := t.TempDir()
	port := testenv.FreePort(t)
	cmd := exec.Command(bin, "--dir", dir, "--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--vips=false")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	testenv.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if waitErr != nil {
			t.Errorf("installed binary after SIGTERM: %v\n%s", waitErr, logs.String())
		}
	}()
	waitStatus(t, port, "SERVICE=web&PORT=443", 404)
	writeFile(t, filepath.Join(dir, "web.443"), "")
	waitStatus(t, port, "SERVICE=web&PORT=443", 200)
}

// TestRPMFileList builds the .rpm and checks its metadata, file list,
// config files, license files and scripts with rpm -qp (rpm is in
// Debian's packages; no install).
func TestRPMFileList(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: builds a package")
	}
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm not installed (Debian package rpm)")
	}
	const version = v2
	p := buildPackages(t, version, "deb", "rpm")["rpm"]
	if got := mustRun(t, 0, nil, "rpm", "-qp", "--qf", "%{LICENSE}|%{VENDOR}|%{URL}|%{PACKAGER}", p); got != "Apache-2.0|http_status maintainers|https://github.com/http-status/http_status|http_status maintainers" {
		t.Errorf("rpm license|vendor|url|packager: %q", got)
	}
	if got := mustRun(t, 0, nil, "rpm", "-qp", "--changelog", p); !strings.HasPrefix(got, "* ") || !strings.Contains(got, " http_status maintainers - "+version+"-1\n- Built from commit ") {
		t.Errorf("rpm --changelog: %q", got)
	}
	if got := strings.TrimSpace(mustRun(t, 0, nil, "rpm", "-qp", "--licensefiles", p)); got != "/usr/share/licenses/http-status/LICENSE" {
		t.Errorf("rpm --licensefiles: %q, want the LICENSE", got)
	}
	var wantFiles, wantConf []string
	for _, w := range expectedFiles(t, "rpm") {
		wantFiles = append(wantFiles, w.path)
		if w.conffile {
			wantConf = append(wantConf, w.path)
		}
	}
	// Directories the package owns.
	wantFiles = append(wantFiles, "/usr/share/http_status", "/usr/share/http_status/upstart",
		"/usr/share/http_status/init.d", "/usr/share/licenses/http-status",
		"/usr/share/doc/http-status", "/usr/share/doc/http-status/examples")
	// The summary: capitalised, no full stop (rpmlint summary-ended-with-dot, summary-not-capitalized).
	if got := mustRun(t, 0, nil, "rpm", "-qp", "--qf", "%{SUMMARY}", p); got != "Health-check responder for load balancers" {
		t.Errorf("rpm summary: %q", got)
	}
	lines := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		sort.Strings(out)
		return out
	}
	sort.Strings(wantFiles)
	sort.Strings(wantConf)
	if got := lines(mustRun(t, 0, nil, "rpm", "-qlp", p)); strings.Join(got, "\n") != strings.Join(wantFiles, "\n") {
		t.Errorf("rpm -qlp:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantFiles, "\n"))
	}
	if got := lines(mustRun(t, 0, nil, "rpm", "-qp", "--configfiles", p)); strings.Join(got, " ") != strings.Join(wantConf, " ") {
		t.Errorf("rpm --configfiles: %v, want %v", got, wantConf)
	}
	scripts := mustRun(t, 0, nil, "rpm", "-qp", "--scripts", p)
	for _, s := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "systemd-sysusers"} {
		if !strings.Contains(scripts, s) {
			t.Errorf("rpm --scripts lacks %q", s)
		}
	}
	if got := mustRun(t, 0, nil, "rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{RELEASE}", p); got != pkgName+" "+version+" 1" {
		t.Errorf("rpm name/version: %q", got)
	}
	// %config(noreplace): rpm's verify flags show it as "c" with
	// --configfiles; the noreplace bit is in FILEFLAGS (RPMFILE_NOREPLACE = 16).
	flags := mustRun(t, 0, nil, "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS}\n]", p)
	found := false
	for _, l := range strings.Split(flags, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 || f[0] != "/etc/sysconfig/http_status" {
			continue
		}
		found = true
		if n, _ := strconv.Atoi(f[1]); n&16 == 0 {
			t.Errorf("/etc/sysconfig/http_status is not %%config(noreplace): flags %s", f[1])
		}
	}
	if !found {
		t.Errorf("no FILEFLAGS for /etc/sysconfig/http_status in:\n%s", flags)
	}
}
