//go:build linux

package watcher

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
)

// toolCase is one way operators rewrite a flag with the tools at hand. edit
// is a shell function body: it rewrites the file f from the state word $1
// to the state word $2, as an operator would with that tool.
type toolCase struct {
	name  string
	tools []string // skip when one is missing
	edit  string
	// names other than squid.80 that may stay in the directory afterwards
	// (backups the tool keeps)
	leftover []string
}

// toolCases are the editors and commands installed on a usual host. vim's
// backupskip is emptied: its default skips backups under /tmp, where
// t.TempDir is, and the directory a flag is in is not /tmp.
var toolCases = []toolCase{
	{name: "vim backupcopy=auto", tools: []string{"vim"},
		edit: `vim -es -N -u NONE -i NONE -n --cmd 'set backupskip=' -c "%s/$1/$2/" -c wq f`},
	{name: "vim backupcopy=yes", tools: []string{"vim"},
		edit: `vim -es -N -u NONE -i NONE -n --cmd 'set backupskip= backupcopy=yes' -c "%s/$1/$2/" -c wq f`},
	{name: "vim backupcopy=no backup", tools: []string{"vim"},
		edit: `vim -es -N -u NONE -i NONE -n --cmd 'set backupskip= backupcopy=no backup' -c "%s/$1/$2/" -c wq f`, leftover: []string{"f~"}},
	{name: "vim nowritebackup", tools: []string{"vim"},
		edit: `vim -es -N -u NONE -i NONE -n --cmd 'set backupskip= nowritebackup nobackup' -c "%s/$1/$2/" -c wq f`},
	{name: "vim swapfile", tools: []string{"vim"},
		edit: `vim -es -N -u NONE -i NONE --cmd 'set backupskip=' -c "%s/$1/$2/" -c wq f`},
	{name: "ed", tools: []string{"ed"},
		edit: `printf ',s/%s/%s/\nw\nq\n' "$1" "$2" | ed -s f`},
	{name: "sed -i", tools: []string{"sed"}, edit: `sed -i "s/$1/$2/" f`},
	{name: "busybox sed -i", tools: []string{"busybox"}, edit: `busybox sed -i "s/$1/$2/" f`},
	{name: "perl -i", tools: []string{"perl"}, edit: `perl -pi -e "s/$1/$2/" f`},
	{name: "perl -i.bak", tools: []string{"perl"}, edit: `perl -pi.bak -e "s/$1/$2/" f`, leftover: []string{"f.bak"}},
	{name: "python3 open w", tools: []string{"python3"},
		edit: `"$PY" -c 'import sys; open("f", "w").write(sys.argv[1] + "\n")' "$2"`},
	{name: "cp", tools: []string{"cp"}, edit: `echo "$2" > src; cp src f`, leftover: []string{"src"}},
	{name: "busybox cp", tools: []string{"busybox"}, edit: `echo "$2" > src; busybox cp src f`, leftover: []string{"src"}},
	{name: "install", tools: []string{"install"}, edit: `echo "$2" > src; install -m 644 src f`, leftover: []string{"src"}},
	{name: "dd", tools: []string{"dd"}, edit: `echo "$2" | dd of=f status=none`},
	{name: "dd conv=notrunc", tools: []string{"dd"}, edit: `echo "$2" | dd of=f conv=notrunc status=none`},
	{name: "dd bs=1", tools: []string{"dd"}, edit: `echo "$2" | dd of=f bs=1 status=none`},
	{name: "dd bs=1 conv=notrunc", tools: []string{"dd"}, edit: `echo "$2" | dd of=f bs=1 conv=notrunc status=none`},
	// Without a newline, a shorter word over a longer one leaves the end
	// of the old one: "downn" over "drain\n".
	{name: "printf | dd conv=notrunc", tools: []string{"dd"}, edit: `printf %s "$2" | dd of=f conv=notrunc status=none`},
	{name: "printf | dd bs=1 conv=notrunc", tools: []string{"dd"}, edit: `printf %s "$2" | dd of=f bs=1 conv=notrunc status=none`},
	{name: "tee", tools: []string{"tee"}, edit: `echo "$2" | tee f >/dev/null`},
	{name: "printf", edit: `printf %s "$2" > f`},
	{name: "truncate then echo", tools: []string{"truncate"}, edit: `truncate -s 0 f; echo "$2" > f`},
	{name: "append to emptied", tools: []string{"truncate"}, edit: `truncate -s 0 f; echo "$2" >> f`},
}

// TestToolsNeverUp rewrites a flag with each tool, over and over, between
// out-of-rotation states only (drain, down, maint). No snapshot the watcher
// publishes may show the flag up, the last state written must be seen,
// and the names the tools create in passing are reported.
func TestToolsNeverUp(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	py := python3()
	for _, tc := range toolCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, tool := range tc.tools {
				if _, err := exec.LookPath(tool); err != nil {
					t.Skipf("no %s: %v", tool, err)
				}
			}
			dir := t.TempDir()
			write(t, filepath.Join(dir, "f"), "drain\n")
			st := cache.NewStore()
			var up atomic.Int64
			var mu sync.Mutex
			seen := map[string]bool{}
			var counting atomic.Bool
			counting.Store(true)
			st.SetOnPublish(func(s *cache.Snapshot) {
				if !counting.Load() {
					return
				}
				if e, ok := s.Lookup("f"); ok && e.State == cache.Up {
					up.Add(1)
				}
				mu.Lock()
				for _, n := range s.Names() {
					seen[n] = true
				}
				mu.Unlock()
			})
			_, st = startWatcher(t, Options{Dir: dir, Store: st})
			script := `cd "$1" || exit 1
edit() {
` + tc.edit + `
}
for i in 1 2; do
	edit drain down && edit down maint && edit maint drain || exit 1
done
edit drain down`
			cmd := exec.Command(sh, "-c", script, "sh", dir)
			cmd.Env = append(os.Environ(), "PY="+py)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", tc.name, err, b)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "f")); !strings.HasPrefix(string(b), "down") {
				t.Fatalf("%s left %q, want down", tc.name, b)
			}
			waitFor(t, st, "f down", state("f", cache.Down))
			counting.Store(false)
			if n := up.Load(); n > 0 {
				t.Errorf("%s: %d snapshots showed the flag up while only drain, down and maint were written", tc.name, n)
			}
			// And back into rotation, as promptly as the file says so.
			cmd = exec.Command(sh, "-c", script[:strings.Index(script, "for i")]+"edit down up", "sh", dir)
			cmd.Env = append(os.Environ(), "PY="+py)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", tc.name, err, b)
			}
			start := time.Now()
			waitFor(t, st, "f up", state("f", cache.Up))
			t.Logf("%s: up %v after the edit", tc.name, time.Since(start).Round(time.Millisecond))
			mu.Lock()
			defer mu.Unlock()
			var passing []string
			for n := range seen {
				if n != "f" && !slices.Contains(tc.leftover, n) {
					passing = append(passing, n)
				}
			}
			slices.Sort(passing)
			if len(passing) > 0 {
				t.Logf("%s: names published in passing: %q", tc.name, passing)
			}
		})
	}
}

// python3 is the interpreter itself, not a version manager's shim (pyenv's
// is a shell script that takes longer to start than the edit it runs).
func python3() string {
	b, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return "python3"
	}
	return strings.TrimSpace(string(b))
}

// TestAppendedOutOfRotation: `echo drain >> FILE` over a flag the control
// command wrote as up ("up\n") takes the service out; the file is never
// read as anything in between but up or drain.
func TestAppendedOutOfRotation(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "squid.80"), "up\n")
	_, st := startWatcher(t, Options{Dir: dir})
	if b, err := exec.Command(sh, "-c", `echo "drain # deploy" >> "$1"/squid.80`, "sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("sh: %v: %s", err, b)
	}
	waitFor(t, st, "squid.80 drain", state("squid.80", cache.Drain))
}
