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
func Write(dir, name string, content []byte) error {
	_, err := WriteReplacing(dir, name, content)
	return err
}

// WriteReplacing is Write, and says how many hard links the flag it
// replaced had (0: there was none, or not a regular file). Above 1, the
// other names still lead to the old file: they no longer change the flag.
func WriteReplacing(dir, name string, content []byte) (links uint64, err error) {
	if err := ensureDir(dir); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("create temp file in %s: %w; %s unchanged", dir, err, name)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		// err names the temp file already.
		return 0, fmt.Errorf("write temp file: %w; %s unchanged", err, name)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("chmod %s: %w; %s unchanged", tmp.Name(), err, name)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("fsync %s: %w; %s unchanged", tmp.Name(), err, name)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w; %s unchanged", tmp.Name(), err, name)
	}
	final := filepath.Join(dir, name)
	if fi, err := os.Lstat(final); err == nil {
		if fi.IsDir() {
			return 0, fmt.Errorf("write flag %s: it is a directory", final)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() {
			links = uint64(st.Nlink)
		}
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
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
