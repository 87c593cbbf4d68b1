package sqlite

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/paddock-ml/paddock/api"
	"golang.org/x/sys/unix"
)

// reserveSize is the disk space held back beside the database.
const reserveSize = 8 << 20

// reserve is disk space held back, as a file beside the database, for the
// writes that keep runs' and nodes' state when the disk fills up: a run
// that fails for lack of space is recorded as failed, and a cancel goes
// through. When such a write finds the disk full the reserve is freed and
// the write tried again; until space comes back, log lines and metrics
// (what fills a disk) are refused at once, so the freed space stays for
// state. The reserve is made again once there is room for it.
type reserve struct {
	path string

	mu        sync.Mutex
	released  bool
	lastCheck time.Time
}

// hold makes the reserve file where there is room for it; it reports
// whether the reserve is held.
func (r *reserve) hold() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.holdLocked()
}

func (r *reserve) holdLocked() bool {
	if fi, err := os.Stat(r.path); err == nil && fi.Size() >= reserveSize {
		r.released = false
		return true
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dirOf(r.path), &st); err != nil || int64(st.Bavail)*int64(st.Bsize) < 2*reserveSize {
		r.released = true
		return false
	}
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		r.released = true
		return false
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, reserveSize); err != nil {
		// Where fallocate is missing, write the space out.
		if _, werr := f.WriteAt(make([]byte, reserveSize), 0); werr != nil {
			f.Close()
			os.Remove(r.path)
			r.released = true
			return false
		}
	}
	r.released = false
	return true
}

// release frees the reserve; it reports whether there was one to free.
func (r *reserve) release() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released = true
	return os.Remove(r.path) == nil
}

// short reports whether the reserve is spent and still cannot be made
// again (the disk is still full); it looks at the disk at most once a
// second.
func (r *reserve) short() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.released {
		return false
	}
	if time.Since(r.lastCheck) < time.Second {
		return true
	}
	r.lastCheck = time.Now()
	return !r.holdLocked()
}

// critical runs a state write, and once more with the reserve freed when
// the disk was full.
func (r *reserve) critical(write func() error) error {
	err := storageError(write())
	if errors.Is(err, api.ErrInsufficientStorage) && r.release() {
		err = storageError(write())
	}
	return err
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[:max(i, 1)]
		}
	}
	return "."
}
