package flagfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Write writes content to dir/name atomically: a dot-prefixed temp file
// in the same directory (which the daemon ignores), fsync, rename over the
// flag, fsync the directory. A reader sees the old file or the new one,
// never a part.
func Write(dir, name string, content []byte) (err error) {
	if err := ensureDir(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return fmt.Errorf("create temp file in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	final := filepath.Join(dir, name)
	if fi, err := os.Lstat(final); err == nil && fi.IsDir() {
		return fmt.Errorf("write flag %s: it is a directory", final)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("rename into %s: %w (a file is mounted over the flag: write it through the mount's source, or unmount it)", final, err)
		}
		return fmt.Errorf("rename into %s: %w", final, err)
	}
	return syncDir(dir)
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

// Links is the hard-link count of the flag dir/name (0 when there is none
// or it cannot be looked at). Above 1, [Write] replaces the file the other
// names lead to with a new one: they no longer change the flag.
func Links(dir, name string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(dir, name), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return 0
	}
	return uint64(st.Nlink)
}
