//go:build !linux

package proc

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Placeholders for the Linux-only state of a Process.
type (
	cgroup  struct{}
	outPipe struct{}
)

var errUnsupported = fmt.Errorf("proc: not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func start(Spec) (*Process, error)          { return nil, errUnsupported }
func (p *Process) stop(time.Duration) error { return errUnsupported }
func (p *Process) cleanup() error           { return errUnsupported }
func (p *Process) alive() []int             { return nil }
func (c *cgroup) oomKills() int             { return 0 }
func cgroupMode() string                    { return "none: " + errUnsupported.Error() }

// KillLeftover is not supported here.
func KillLeftover(string) error { return nil }

// Reachable is always true here.
func Reachable(string, User) bool { return true }
