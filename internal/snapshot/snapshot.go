// Package snapshot turns a directory into a gzip-compressed tar archive and
// back again. Paddock uses it for a run's source directory (uploaded by
// `paddock run submit --source DIR`), for a run's ./outputs (uploaded by the
// node agent) and for `paddock run download`.
//
// Create honours a .paddockignore at the root of the directory and stops at
// the size and entry-count Limits. Extract treats every archive as hostile:
// it refuses entries that would land outside the destination, symlinks that
// point outside it, hard links and device files, and it enforces the Limits
// before writing any data, not after. Digest content-addresses an archive.
package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
)

// Limits bound an archive, both when Create writes one and when Extract
// reads one. Zero (or negative) fields mean "use the default" from
// DefaultLimits.
type Limits struct {
	MaxBytes int64 // total uncompressed bytes of regular files
	MaxFiles int   // number of entries (files, dirs, symlinks)
}

// DefaultLimits are the limits used for any field of Limits left at zero:
// 100 MiB of file data in at most 20,000 entries.
var DefaultLimits = Limits{MaxBytes: 100 << 20, MaxFiles: 20000}

// withDefaults fills zero or negative fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	return l
}

// Info describes what Create wrote or Extract unpacked. Files counts every
// entry (regular files, directories and symlinks), the same unit as
// Limits.MaxFiles; Bytes is the total size of the regular files.
type Info struct {
	Files int
	Bytes int64
	// Skipped lists what Create left out of the archive, in walk order:
	// symlinks that dangle or lead outside the directory. Callers show
	// them as warnings (the CLI on stderr, the agent in the run's log).
	Skipped []Skipped
}

// Skipped is an entry Create left out of an archive.
type Skipped struct {
	Path   string // slash-separated, relative to the directory
	Reason string // one sentence naming the entry and the problem
}

// String is the warning to show: "skipped PATH: REASON".
func (s Skipped) String() string { return "skipped " + s.Path + ": " + s.Reason }

// LimitError is returned when a directory or an archive exceeds a Limits
// field. Its message is one sentence meant for the user: it names the limit,
// what was found and, for Create, what to do about it. Match it with
// errors.As.
type LimitError struct {
	msg string
}

// Error returns the user-facing sentence.
func (e *LimitError) Error() string { return e.msg }

// Digest returns the hex-encoded SHA-256 of everything read from r and the
// number of bytes read. Paddock content-addresses uploaded snapshots by it.
func Digest(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, fmt.Errorf("snapshot: digest: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// formatSize writes n bytes for a person: "100 MiB", "1.5 GiB", "812 B".
// With roundUp the value is rounded up to the shown precision, so a size
// just over a limit never prints as equal to it.
func formatSize(n int64, roundUp bool) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	tenths := math.Round(v * 10)
	if roundUp {
		tenths = math.Ceil(v*10 - 1e-9)
	}
	if math.Mod(tenths, 10) == 0 {
		return fmt.Sprintf("%d %s", int64(tenths/10), units[i])
	}
	return fmt.Sprintf("%.1f %s", tenths/10, units[i])
}
