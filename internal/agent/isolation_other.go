//go:build !linux

package agent

import (
	"fmt"
	"runtime"

	"github.com/paddock-ml/paddock/internal/agent/proc"
)

// EnterUserNamespace does nothing where there are no user namespaces.
func EnterUserNamespace() (entered bool, code int) { return false, 0 }

func detectIsolation() (isolationMode, proc.User, string) {
	return isolateNone, proc.User{}, "not supported on " + runtime.GOOS
}

func notDumpable() {}

func ensureOSUser(name, _ string) (proc.User, error) {
	return proc.User{}, fmt.Errorf("cannot create the OS user %s on %s", name, runtime.GOOS)
}
