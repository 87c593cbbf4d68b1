// Package policy is a workspace's admin policy: limits the server applies
// to every compute instance and run whatever their users ask for (how
// long an instance may stay idle before it is stopped, how long a run may
// run), the rules that apply them, and the hook that records each time a
// policy stops something.
//
// The rules are pure functions of a Policy and what was asked; the
// services call them where a request is checked (targets) and where a
// policy takes effect (the instance controller, the dispatcher), and call
// a Recorder when it fires.
package policy

import (
	"context"
	"log/slog"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// Upper bounds of the limits, the same as those of the settings they cap
// (docs/compute.md, docs/runs.md).
const (
	MaxIdle           = 30 * 24 * time.Hour // idle_time_before_shutdown of an instance
	MaxRunDurationSec = 365 * 24 * 60 * 60  // max_run_duration_seconds of a run
)

// Policy is a workspace's limits; a zero field sets no limit.
type Policy struct {
	// MaxIdle caps an instance's idle_time_before_shutdown.
	MaxIdle time.Duration
	// MaxRunDurationSeconds caps a run's max_run_duration_seconds.
	MaxRunDurationSeconds int64
}

// IsZero reports whether the policy sets no limit.
func (p Policy) IsZero() bool { return p == Policy{} }

// API is the policy as the API shows it.
func (p Policy) API() api.Policy {
	out := api.Policy{MaxRunDurationSeconds: p.MaxRunDurationSeconds}
	if p.MaxIdle > 0 {
		out.MaxIdleTimeBeforeShutdown = p.MaxIdle.String()
	}
	return out
}

// Update returns p with the fields of u applied, each checked: an error
// names the field and its rule. "0" and 0 remove a limit.
func (p Policy) Update(u api.PolicyUpdate) (Policy, error) {
	if u.Policy.MaxIdleTimeBeforeShutdown == nil && u.Policy.MaxRunDurationSeconds == nil {
		return p, api.Invalid("policy", "nothing to change: give max_idle_time_before_shutdown or max_run_duration_seconds")
	}
	if s := u.Policy.MaxIdleTimeBeforeShutdown; s != nil {
		d, err := time.ParseDuration(*s)
		switch {
		case *s == "":
			d = 0
		case err != nil || d < 0:
			return p, api.Invalid("max_idle_time_before_shutdown", "max_idle_time_before_shutdown must be a duration such as 30m or 2h (0 removes the limit), not %q", *s)
		case d > MaxIdle:
			return p, api.Invalid("max_idle_time_before_shutdown", "max_idle_time_before_shutdown must be at most %s (30 days), not %q", MaxIdle, *s)
		case d > 0 && d < time.Second:
			return p, api.Invalid("max_idle_time_before_shutdown", "max_idle_time_before_shutdown must be at least 1s, not %q", *s)
		}
		p.MaxIdle = d
	}
	if n := u.Policy.MaxRunDurationSeconds; n != nil {
		if *n < 0 || *n > MaxRunDurationSec {
			return p, api.Invalid("max_run_duration_seconds", "max_run_duration_seconds must be 0 (no limit) to %d (a year), not %d", MaxRunDurationSec, *n)
		}
		p.MaxRunDurationSeconds = *n
	}
	return p, nil
}

// Policy names, as events and errors name them.
const (
	NameMaxIdle        = "max_idle_time_before_shutdown"
	NameMaxRunDuration = "max_run_duration_seconds"
)

// CheckIdle checks an instance's own idle_time_before_shutdown (0: never)
// when it is created or changed: asking for longer than the policy allows
// is refused, naming the field and the policy.
func (p Policy) CheckIdle(own time.Duration) error {
	if p.MaxIdle > 0 && own > p.MaxIdle {
		return api.Invalid("idle_time_before_shutdown", "idle_time_before_shutdown (%s) is longer than the workspace's policy allows (%s %s); ask for %s or less, or leave it unset to get the policy's",
			own, NameMaxIdle, p.MaxIdle, p.MaxIdle)
	}
	return nil
}

// EffectiveIdle is the idle time after which an instance is stopped: its
// own (0: never), capped by the policy; fromPolicy says the policy set it
// (the instance asked for none, or for longer, before the policy was set).
func (p Policy) EffectiveIdle(own time.Duration) (d time.Duration, fromPolicy bool) {
	if p.MaxIdle > 0 && (own == 0 || own > p.MaxIdle) {
		return p.MaxIdle, true
	}
	return own, false
}

// RunDuration checks and defaults a run's max_run_duration_seconds (0: no
// limit): more than the policy allows is refused, naming the field and the
// policy; none gets the policy's maximum (fromPolicy).
func (p Policy) RunDuration(asked int64) (seconds int64, fromPolicy bool, err error) {
	switch {
	case p.MaxRunDurationSeconds == 0:
		return asked, false, nil
	case asked == 0:
		return p.MaxRunDurationSeconds, true, nil
	case asked > p.MaxRunDurationSeconds:
		return 0, false, api.Invalid("max_run_duration_seconds", "max_run_duration_seconds (%d) is more than the workspace's policy allows (%s %d); ask for %d or less, or leave it unset to get the policy's",
			asked, NameMaxRunDuration, p.MaxRunDurationSeconds, p.MaxRunDurationSeconds)
	}
	return asked, false, nil
}

// Event is one time a policy stopped something: a request refused, a run
// stopped at the policy's maximum, an instance stopped when idle for the
// policy's time.
type Event struct {
	Workspace string
	// Policy is the limit that fired (NameMaxIdle, NameMaxRunDuration).
	Policy string
	// Action is what it did: "refused" (a create, update or submit),
	// "stopped" (a run or an instance).
	Action  string
	Compute string
	Run     string // the run, for run events
	User    string // who asked, or whose run it was
	Limit   string // the policy's value
	Message string
}

// Auditor records policy events durably (the audit log). PolicyFired is
// called after the change the event describes is committed, and must not
// block for long: the dispatcher calls it from its loop.
type Auditor interface {
	PolicyFired(ctx context.Context, ev Event)
}

// Recorder is where policy events go: the server log (one Info line, msg
// "policy") and, when set, the Auditor. A nil Recorder records nothing.
type Recorder struct {
	Log     *slog.Logger
	Auditor Auditor
}

// Fire records one event.
func (r *Recorder) Fire(ctx context.Context, ev Event) {
	if r == nil {
		return
	}
	if r.Log != nil {
		r.Log.Info("policy", "event", "policy", "policy", ev.Policy, "action", ev.Action, "workspace", ev.Workspace,
			"compute", ev.Compute, "run", ev.Run, "user", ev.User, "limit", ev.Limit, "detail", ev.Message)
	}
	if r.Auditor != nil {
		r.Auditor.PolicyFired(ctx, ev)
	}
}
