package packaging_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const pkgName = "http-status"

var (
	pkgMu    sync.Mutex
	pkgBuilt = map[string]string{} // "version kind" -> path
)

// buildPackage runs packaging/build.sh for one version and kind (deb, rpm)
// and returns the package's path. The first call also builds nfpm (go run
// of the pinned version), which takes a while on a cold module cache.
func buildPackage(t *testing.T, version, kind string) string {
	t.Helper()
	pkgMu.Lock()
	defer pkgMu.Unlock()
	if p, ok := pkgBuilt[version+" "+kind]; ok {
		return p
	}
	out := filepath.Join(tmpRoot, "pkgs-"+version)
	cmd := exec.Command(filepath.Join(repoRoot, "packaging", "build.sh"), kind)
	cmd.Env = append(os.Environ(), "OUT_DIR="+out, "VERSION="+version)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("packaging/build.sh %s: %v\n%s", kind, err, stderr.String())
	}
	p := strings.TrimSpace(string(stdout))
	if strings.Contains(p, "\n") || !strings.HasSuffix(p, "."+kind) {
		t.Fatalf("build.sh printed %q, want one .%s", p, kind)
	}
	pkgBuilt[version+" "+kind] = p
	return p
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
	}
	if kind == "deb" {
		f = append(f,
			shipped{path: "/etc/default/http_status", mode: 0o644, conffile: true, src: "packaging/http_status.default"},
			shipped{path: "/etc/init.d/http_status", mode: 0o755, conffile: true, src: "contrib/init.d/http_status"})
	} else {
		f = append(f,
			shipped{path: "/etc/sysconfig/http_status", mode: 0o644, conffile: true, src: "packaging/http_status.default"},
			shipped{path: "/usr/share/http_status/init.d/http_status", mode: 0o755, src: "contrib/init.d/http_status"})
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

// TestDebPackage builds the .deb, installs it with dpkg on this machine,
// checks every file, the user, the status directory, the installed
// binary and units, upgrades it with a running daemon, then removes and
// purges it. Root only; on a host booted with systemd it skips, since the
// package would enable and start the real service.
func TestDebPackage(t *testing.T) {
	switch {
	case testing.Short():
		t.Skip("-short: builds and installs a package")
	case os.Getenv("HTTP_STATUS_SKIP_DPKG") != "":
		t.Skip("HTTP_STATUS_SKIP_DPKG set")
	case os.Geteuid() != 0:
		t.Skip("installs a .deb: needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed")
	}
	if st, err := os.Stat("/run/systemd/system"); err == nil && st.IsDir() {
		t.Skip("this host runs systemd: installing would enable and start the real service")
	}
	v1, v2 := "1.0.0+test1", "1.0.0+test2"
	deb1 := buildPackage(t, v1, "deb")
	deb2 := buildPackage(t, v2, "deb")

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
		checkFile(t, w)
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
	var wantConf []string
	for _, w := range want {
		if w.conffile {
			wantConf = append(wantConf, w.path)
		}
	}
	sort.Strings(conf)
	sort.Strings(wantConf)
	if strings.Join(conf, " ") != strings.Join(wantConf, " ") {
		t.Errorf("conffiles %v, want %v", conf, wantConf)
	}

	// The man page is the committed one, and man finds it.
	checkManPage(t)

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
	runInstalledBinary(t)

	// The installed units.
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		out, code := run(t, []string{"SYSTEMD_LOG_LEVEL=notice"}, analyze, "verify",
			"/lib/systemd/system/http_status.service", "/lib/systemd/system/http_status.socket")
		if code != 0 || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify: exit %d\n%s", code, out)
		}
	} else {
		t.Log("systemd-analyze not installed: units not verified")
	}

	// Upgrade with a running daemon (started by the installed SysV
	// script, as on a host without systemd), an edited config and a flag.
	port := freePort(t)
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

	// Purge: nothing left.
	mustRun(t, 0, nil, "dpkg", "-P", pkgName)
	for _, w := range want {
		if _, err := os.Lstat(w.path); !os.IsNotExist(err) {
			t.Errorf("dpkg -P left %s", w.path)
		}
	}
	left, _ := filepath.Glob("/etc/rc?.d/[SK][0-9][0-9]http_status")
	for _, p := range []string{"/run/http_status", "/etc/default/http_status.dpkg-old", "/etc/default/http_status.dpkg-dist"} {
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

// checkFile checks one installed file: regular, owned by root, mode, and
// content when it comes straight from the repository.
func checkFile(t *testing.T, w shipped) {
	t.Helper()
	st, err := os.Lstat(w.path)
	if err != nil {
		t.Errorf("installed file: %v", err)
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	if !st.Mode().IsRegular() || st.Mode().Perm() != w.mode || sys.Uid != 0 || sys.Gid != 0 {
		t.Errorf("%s: mode %v uid %d gid %d, want a regular file %v root:root", w.path, st.Mode(), sys.Uid, sys.Gid, w.mode)
	}
	if w.src == "" {
		return
	}
	got, err1 := os.ReadFile(w.path)
	src, err2 := os.ReadFile(filepath.Join(repoRoot, w.src))
	if err1 != nil || err2 != nil || !bytes.Equal(got, src) {
		t.Errorf("%s differs from %s (%v, %v)", w.path, w.src, err1, err2)
	}
}

func checkManPage(t *testing.T) {
	t.Helper()
	f, err := os.Open("/usr/share/man/man8/http_status.8.gz")
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
	if _, err := exec.LookPath("man"); err == nil {
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

// runInstalledBinary runs /usr/sbin/http_status on a temp dir and a free
// port and checks /status follows a flag.
func runInstalledBinary(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command("/usr/sbin/http_status", "--dir", dir, "--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--vips=false")
	var logs bytes.Buffer
	cmd.Stderr = &logs
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

// TestRPMFileList builds the .rpm and checks its file list, config files
// and scripts with rpm -qp (rpm is in Debian's packages; no install).
func TestRPMFileList(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds a package")
	}
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm not installed (Debian package rpm)")
	}
	const version = "1.0.0+test2"
	p := buildPackage(t, version, "rpm")
	var wantFiles, wantConf []string
	for _, w := range expectedFiles(t, "rpm") {
		wantFiles = append(wantFiles, w.path)
		if w.conffile {
			wantConf = append(wantConf, w.path)
		}
	}
	// Directories the package owns.
	wantFiles = append(wantFiles, "/usr/share/http_status", "/usr/share/http_status/upstart",
		"/usr/share/doc/http-status", "/usr/share/doc/http-status/examples")
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
