// Package clientconfig reads and writes the CLI's configuration file
// (~/.paddock/config, or $PADDOCK_CONFIG): the server URL, a token, the
// workspace and, for an HTTPS server, the CA to trust, so the CLI and the
// SDK work with no flags after `paddock up`.
package clientconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvPath names the environment variable that overrides the config path.
const EnvPath = "PADDOCK_CONFIG"

// DefaultServer is used when no config and no flag name a server.
const DefaultServer = "http://127.0.0.1:8765"

// Config is the content of the file. It is JSON so the Python SDK reads it
// with the standard library.
type Config struct {
	Server    string `json:"server"`
	Token     string `json:"token"`
	Workspace string `json:"workspace"`
	// CA is the PEM certificate(s) of the CA clients trust for Server,
	// and no others (`paddock up --tls`'s own CA, or --tls-ca); empty: the
	// system's roots.
	CA string `json:"ca,omitempty"`
}

// EnvCAFile names the environment variable that gives clients (the CLI,
// the SDK, runs) a CA file to trust for the server.
const EnvCAFile = "PADDOCK_CA_FILE"

// Path is where the config lives.
func Path() (string, error) {
	if p := os.Getenv(EnvPath); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the home directory for ~/.paddock/config (set %s instead): %w", EnvPath, err)
	}
	return filepath.Join(home, ".paddock", "config"), nil
}

// Load reads the config; a missing file gives an empty Config and no error.
func Load() (Config, string, error) {
	var c Config
	path, err := Path()
	if err != nil {
		return c, "", err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, path, nil
	}
	if err != nil {
		return c, path, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, path, fmt.Errorf("%s is not a valid Paddock config: %w", path, err)
	}
	return c, path, nil
}

// Save writes the config atomically with mode 0600 (it holds a token) and
// returns the path written.
func Save(c Config) (string, error) {
	path, err := Path()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	return path, WriteFileAtomic(path, append(data, '\n'), 0o600)
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it into place, so readers see the old or the new file, never half.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
