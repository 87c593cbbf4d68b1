package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/paddock-ml/paddock/api"
	"github.com/paddock-ml/paddock/internal/certs"
	"github.com/paddock-ml/paddock/internal/clientconfig"
	tokens "github.com/paddock-ml/paddock/internal/token"
	"github.com/paddock-ml/paddock/internal/users"
)

// privateDataDir makes the data dir readable by its owner only (0700) and
// the database 0600, fixing what earlier versions made, and saying so. The
// database file (with a SQLite store) is made before SQLite opens it,
// because SQLite gives its -wal and -shm files the mode of the database.
func privateDataDir(dir string, withSQLite bool, log *slog.Logger) error {
	tighten := func(path string, perm os.FileMode) error {
		fi, err := os.Lstat(path)
		if errors.Is(err, os.ErrNotExist) || err == nil && (fi.Mode()&os.ModeSymlink != 0 || fi.Mode().Perm()&^perm == 0) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := os.Chmod(path, fi.Mode().Perm()&perm); err != nil {
			return fmt.Errorf("making %s private: %w", path, err)
		}
		log.Warn("tightened the permissions of a file an earlier version left readable by others", "path", path,
			"was", fmt.Sprintf("%04o", fi.Mode().Perm()), "now", fmt.Sprintf("%04o", fi.Mode().Perm()&perm))
		return nil
	}
	if err := tighten(dir, 0o700); err != nil {
		return err
	}
	if withSQLite {
		db := filepath.Join(dir, dbFile)
		if f, err := os.OpenFile(db, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
			f.Close()
		} else {
			return fmt.Errorf("creating %s: %w", db, err)
		}
	}
	if err := tighten(filepath.Join(dir, tlsDir), 0o700); err != nil {
		return err
	}
	for _, name := range []string{dbFile, dbFile + "-wal", dbFile + "-shm", dbFile + "-journal", adminTokenFile, lockFile,
		filepath.Join(tlsDir, certs.CAFile), filepath.Join(tlsDir, certs.CAKeyFile), filepath.Join(tlsDir, certs.CertFile), filepath.Join(tlsDir, certs.KeyFile)} {
		if err := tighten(filepath.Join(dir, name), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ensureAdmin makes sure the admin user exists with the token kept in the
// data dir, creating a token on first start (or when the file was
// removed, which is how a lost admin token is replaced).
func ensureAdmin(ctx context.Context, us *users.Service, path string, log *slog.Logger) (string, error) {
	data, err := os.ReadFile(path)
	token := strings.TrimSpace(string(data))
	if errors.Is(err, os.ErrNotExist) || token == "" {
		token = tokens.New()
		if err := writeAdminToken(path, token); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	revoked, err := us.EnsureAdmin(ctx, adminUser, token)
	if revoked {
		log.Warn("the admin token in the data dir was revoked; remove the file and restart to get a new one", "file", path)
	}
	return token, err
}

// writeAdminToken keeps the admin's bootstrap token in the data dir.
func writeAdminToken(path, token string) error {
	return clientconfig.WriteFileAtomic(path, []byte(token+"\n"), 0o600)
}

// dirLock is a flock on the data dir's lock file, held while the server
// runs; the kernel drops it if the process dies. A SQLite server holds it
// exclusive; replicas of a PostgreSQL store share it, and so may share the
// data dir with each other but not with a SQLite server.
type dirLock struct{ f *os.File }

func lockDataDir(dir string, shared bool) (*dirLock, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who == "" {
				who = "another process"
			}
			if shared {
				return nil, api.Conflict("data dir %s is in use by a paddock server with its own SQLite store (%s); replicas of a PostgreSQL store share a data dir only with each other", dir, who)
			}
			return nil, api.Conflict("data dir %s is in use by another paddock server (%s); stop it first or choose another --data-dir", dir, who)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) describe(url string) error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt([]byte(fmt.Sprintf("pid %d, serving %s\n", os.Getpid(), url)), 0)
	return err
}

func (l *dirLock) release() {
	if syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		l.f.Truncate(0) // the last one out clears the description
	}
	l.f.Close()
}

// servePprof serves the runtime profiles on their own listener, so that
// they are never reachable through the API's address.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s (--pprof-listen): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("serving runtime profiles", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { srv.Close() }, nil
}

// DataDirInUse returns api.ErrConflict when a server runs on the data dir
// (it holds the lock), so that its database is not copied while it
// changes.
func DataDirInUse(dir string) error {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(f)
		who := strings.TrimSpace(string(holder))
		if who == "" {
			who = "another process"
		}
		return api.Conflict("a paddock server is running on data dir %s (%s); stop it first", dir, who)
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
