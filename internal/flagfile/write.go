package flagfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Write writes content to dir/name atomically: a dot-prefixed temp file
// in the same directory (which the daemon ignores), fsync, rename over the
// flag, fsync the directory. A reader sees the old file or the new one,
// never a part.
func Write(dir, name string, content []byte) error {
	_, err := WriteReplacing(dir, name, content)
	return err
}

// WriteReplacing is Write, and says how many hard links the flag it
// replaced had (0: there was none, or not a regular file). Above 1, the
// other names still lead to the old file: they no longer change the flag.
func WriteReplacing(dir, name string, content []byte) (links uint64, err error) {
	tmp, err := writeTemp(dir, name, content)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	final := filepath.Join(dir, name)
	if fi, err := os.Lstat(final); err == nil {
		if fi.IsDir() {
			return 0, fmt.Errorf("write flag %s: it is a directory", final)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() {
			links = uint64(st.Nlink)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return 0, fmt.Errorf("rename into %s: %w (a file is mounted over the flag: write it through the mount's source, or unmount it)", final, err)
		}
		return 0, fmt.Errorf("rename into %s: %w; unchanged%s", final, err, stickyHint(dir, err))
	}
	if err := syncDir(dir); err != nil {
		// The new content is in place: readers see it. Say so, or a
		// caller retries, or believes the old state stands.
		return links, fmt.Errorf("%w: %s was written, but may not survive a crash", err, name)
	}
	return links, nil
}

// Remove removes dir/name; removed is false when there was none.
func Remove(dir, name string) (removed bool, err error) {
	p := filepath.Join(dir, name)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove flag: %w", err)
	}
	if fi.IsDir() {
		return false, fmt.Errorf("remove flag %s: it is a directory", p)
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("remove flag: %w; unchanged%s", err, stickyHint(dir, err))
	}
	return true, syncDir(dir)
}

// stickyHint explains an EPERM from replacing or removing a flag in a
// sticky directory (mode 1777, as /tmp): only the flag's owner (or the
// directory's, or root) may, whatever the directory's write bits say.
func stickyHint(dir string, err error) string {
	fi, serr := os.Stat(dir)
	if !errors.Is(err, fs.ErrPermission) || serr != nil || fi.Mode()&fs.ModeSticky == 0 {
		return ""
	}
	return " (the directory is sticky: only the flag's owner may replace or remove it)"
}

// ensureDir creates the status directory (one level, mode 0755) when it is
// missing, as the daemon does at start, so a state can be set before the
// daemon first runs.
func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("status directory %s: not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("status directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create status directory: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// ErrChanged is returned by [ReplaceIf] and [RemoveIf] when the flag no
// longer held what the caller expected: someone else's word, left as it is.
var ErrChanged = errors.New("the flag was changed by someone else; left as it is")

// ReplaceIf is [Write], done only while the flag still holds expect: a
// change another writer made after the caller last read the flag (drain
// --wait's --then, racing an operator's "up") is never overwritten. The new
// content is swapped in atomically (renameat2 RENAME_EXCHANGE) and what it
// replaced is read back; when that was not expect, the swap is undone
// (readers may see the new content for that moment) and the error is
// [ErrChanged].
//
// A filesystem without RENAME_EXCHANGE (NFS, most FUSE servers) gets the
// same guarantee another way: the flag is renamed aside (atomic), read, and
// the new content put in its place only where no flag has appeared
// meanwhile (renameat2 RENAME_NOREPLACE, or link where that is missing);
// a flag that appeared meanwhile is the other writer's and stays. Readers
// see no flag for that moment: out of rotation.
func ReplaceIf(dir, name string, content, expect []byte) error {
	tmp, err := writeTemp(dir, name, content)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	final := filepath.Join(dir, name)
	if err := renameExchange(tmp, final); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ErrChanged // removed meanwhile
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("exchange %s: %w; unchanged", final, err)
		}
		return replaceAside(dir, name, tmp, expect)
	}
	// tmp now holds what was the flag.
	if old, err := os.ReadFile(tmp); err != nil || !bytes.Equal(old, expect) {
		if err := renameExchange(tmp, final); err != nil {
			return fmt.Errorf("put back %s after a change by someone else: %w", final, err)
		}
		return ErrChanged
	}
	return syncDir(dir)
}

// renameExchange swaps a and b atomically.
func renameExchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// replaceAside is [ReplaceIf] without RENAME_EXCHANGE: tmp (the new
// content) takes the flag's place only when the flag, renamed aside, held
// expect and no other flag appeared meanwhile.
func replaceAside(dir, name, tmp string, expect []byte) error {
	final := filepath.Join(dir, name)
	aside, err := takeAside(dir, name)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(aside); err != nil || !bytes.Equal(old, expect) {
		if err := putBack(aside, final); err != nil {
			return err
		}
		_ = os.Remove(aside) // a newer flag won: the old one goes
		return ErrChanged
	}
	if err := renameNoReplace(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			_ = os.Remove(aside)
			return ErrChanged // a newer flag, the other writer's: it stays
		}
		if perr := putBack(aside, final); perr != nil {
			return fmt.Errorf("rename into %s: %w; and %w", final, err, perr)
		}
		return fmt.Errorf("rename into %s: %w; unchanged", final, err)
	}
	_ = os.Remove(aside)
	return syncDir(dir)
}

// takeAside renames dir/name to a new temp name (which the daemon
// ignores), atomically, and returns that name; [ErrChanged] when there is
// no flag.
func takeAside(dir, name string) (string, error) {
	final := filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("create temp file in %s: %w; %s unchanged", dir, err, name)
	}
	f.Close()
	if err := os.Rename(final, f.Name()); err != nil {
		_ = os.Remove(f.Name())
		if errors.Is(err, fs.ErrNotExist) {
			return "", ErrChanged
		}
		return "", fmt.Errorf("rename %s aside: %w; unchanged", final, err)
	}
	return f.Name(), nil
}

// putBack moves a flag taken aside back to final, unless a newer flag has
// appeared there meanwhile, which wins. On a filesystem that can neither
// rename without replacing nor link (vfat), it is put back unless final
// exists, with a window of an lstat: putting back another writer's word
// (or this command's drain) must not fail where only that window is at
// stake.
func putBack(aside, final string) error {
	err := renameNoReplace(aside, final)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return nil
	}
	if _, lerr := os.Lstat(final); errors.Is(lerr, fs.ErrNotExist) {
		if err := os.Rename(aside, final); err == nil {
			return nil
		}
	}
	return fmt.Errorf("put back %s: %w (its content is in %s)", final, err, aside)
}

// renameNoReplace renames from to to unless to exists (fs.ErrExist then):
// renameat2 RENAME_NOREPLACE, or where the filesystem lacks it (NFS) a
// hard link, which never replaces either, then the removal of from.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		if errors.Is(err, unix.EEXIST) {
			return fs.ErrExist
		}
		return err
	}
	if err := os.Link(from, to); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return fmt.Errorf("this filesystem can neither rename without replacing nor link (%w): refused rather than risk overwriting another writer's flag", err)
	}
	// Done: to has the content. A from left behind is a temp name the
	// daemon ignores, not a failure of the rename.
	_ = os.Remove(from)
	return nil
}

// RemoveIf is [Remove], done only while the flag still holds expect (see
// [ReplaceIf]): the flag is renamed aside atomically and read; when it was
// not expect it is put back, unless a newer flag has appeared meanwhile,
// which wins. Readers may see no flag for that moment (out of rotation).
func RemoveIf(dir, name string, expect []byte) error {
	aside, err := takeAside(dir, name)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(aside); err != nil || !bytes.Equal(old, expect) {
		if err := putBack(aside, filepath.Join(dir, name)); err != nil {
			return err
		}
		_ = os.Remove(aside) // a newer flag won: the old one goes
		return ErrChanged
	}
	if err := os.Remove(aside); err != nil {
		return fmt.Errorf("remove flag: %w", err)
	}
	return syncDir(dir)
}

// writeTemp writes content to a new temp file in dir, fsynced, and returns
// its path.
func writeTemp(dir, name string, content []byte) (path string, err error) {
	if err := ensureDir(dir); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("create temp file in %s: %w; %s unchanged", dir, err, name)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(content); err != nil {
		return "", fmt.Errorf("write temp file: %w; %s unchanged", err, name)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", fmt.Errorf("chmod %s: %w; %s unchanged", tmp.Name(), err, name)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("fsync %s: %w; %s unchanged", tmp.Name(), err, name)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("close %s: %w; %s unchanged", tmp.Name(), err, name)
	}
	return tmp.Name(), nil
}
