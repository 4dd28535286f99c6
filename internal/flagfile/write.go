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
		return 0, fmt.Errorf("rename into %s: %w; unchanged", final, err)
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
		return false, fmt.Errorf("remove flag: %w", err)
	}
	return true, syncDir(dir)
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
// [ErrChanged]. On a filesystem without RENAME_EXCHANGE the flag is read
// just before the rename, which leaves a short window.
func ReplaceIf(dir, name string, content, expect []byte) error {
	tmp, err := writeTemp(dir, name, content)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	final := filepath.Join(dir, name)
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ErrChanged // removed meanwhile
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("exchange %s: %w; unchanged", final, err)
		}
		if old, err := os.ReadFile(final); err != nil || !bytes.Equal(old, expect) {
			return ErrChanged
		}
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("rename into %s: %w; unchanged", final, err)
		}
		return syncDir(dir)
	}
	// tmp now holds what was the flag.
	if old, err := os.ReadFile(tmp); err != nil || !bytes.Equal(old, expect) {
		if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE); err != nil {
			return fmt.Errorf("put back %s after a change by someone else: %w", final, err)
		}
		return ErrChanged
	}
	return syncDir(dir)
}

// RemoveIf is [Remove], done only while the flag still holds expect (see
// [ReplaceIf]): the flag is renamed aside atomically and read; when it was
// not expect it is put back, unless a newer flag has appeared meanwhile,
// which wins. Readers may see no flag for that moment (out of rotation).
func RemoveIf(dir, name string, expect []byte) error {
	final := filepath.Join(dir, name)
	aside, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return fmt.Errorf("create temp file in %s: %w; %s unchanged", dir, err, name)
	}
	aside.Close()
	if err := os.Rename(final, aside.Name()); err != nil {
		_ = os.Remove(aside.Name())
		if errors.Is(err, fs.ErrNotExist) {
			return ErrChanged
		}
		return fmt.Errorf("remove flag: %w", err)
	}
	if old, err := os.ReadFile(aside.Name()); err != nil || !bytes.Equal(old, expect) {
		err := unix.Renameat2(unix.AT_FDCWD, aside.Name(), unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("put back %s after a change by someone else: %w", final, err)
		}
		_ = os.Remove(aside.Name())
		return ErrChanged
	}
	if err := os.Remove(aside.Name()); err != nil {
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
