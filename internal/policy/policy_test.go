package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

func TestUpdate(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	num := func(n int64) *int64 { return &n }
	start := Policy{MaxIdle: time.Hour, MaxRunDurationSeconds: 600}
	tests := []struct {
		desc  string
		idle  *string
		dur   *int64
		want  Policy
		field string // the field an error names; "" when accepted
	}{
		{"set both", str("2h"), num(86400), Policy{MaxIdle: 2 * time.Hour, MaxRunDurationSeconds: 86400}, ""},
		{"idle only keeps the duration", str("30m"), nil, Policy{MaxIdle: 30 * time.Minute, MaxRunDurationSeconds: 600}, ""},
		{"zero idle removes it", str("0"), nil, Policy{MaxRunDurationSeconds: 600}, ""},
		{"empty idle removes it", str(""), nil, Policy{MaxRunDurationSeconds: 600}, ""},
		{"zero duration removes it", nil, num(0), Policy{MaxIdle: time.Hour}, ""},
		{"the longest idle", str("720h"), nil, Policy{MaxIdle: 720 * time.Hour, MaxRunDurationSeconds: 600}, ""},
		{"the longest duration", nil, num(MaxRunDurationSec), Policy{MaxIdle: time.Hour, MaxRunDurationSeconds: MaxRunDurationSec}, ""},
		{"nothing", nil, nil, Policy{}, "policy"},
		{"idle not a duration", str("two hours"), nil, Policy{}, "max_idle_time_before_shutdown"},
		{"idle negative", str("-1h"), nil, Policy{}, "max_idle_time_before_shutdown"},
		{"idle too long", str("720h1s"), nil, Policy{}, "max_idle_time_before_shutdown"},
		{"idle under a second", str("10ms"), nil, Policy{}, "max_idle_time_before_shutdown"},
		{"duration negative", nil, num(-1), Policy{}, "max_run_duration_seconds"},
		{"duration over a year", nil, num(MaxRunDurationSec + 1), Policy{}, "max_run_duration_seconds"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var u api.PolicyUpdate
			u.Policy.MaxIdleTimeBeforeShutdown, u.Policy.MaxRunDurationSeconds = tc.idle, tc.dur
			got, err := start.Update(u)
			var e *api.Error
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field == "" && got != tc.want:
				t.Fatalf("Update = %+v, want %+v", got, tc.want)
			case tc.field != "" && (!errors.As(err, &e) || e.Code != api.CodeInvalid || e.Field != tc.field):
				t.Fatalf("err = %v, want Invalid naming %s", err, tc.field)
			}
		})
	}
}

func TestIdle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc         string
		max, own     time.Duration
		refused      bool
		want         time.Duration
		wantFromPoli bool
	}{
		{"no policy, no idle time", 0, 0, false, 0, false},
		{"no policy keeps its own", 0, 5 * time.Hour, false, 5 * time.Hour, false},
		{"under the policy", 2 * time.Hour, time.Hour, false, time.Hour, false},
		{"equal to the policy", 2 * time.Hour, 2 * time.Hour, false, 2 * time.Hour, false},
		{"none gets the policy's", 2 * time.Hour, 0, false, 2 * time.Hour, true},
		{"longer is refused, and capped when it exists", 2 * time.Hour, 3 * time.Hour, true, 2 * time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := Policy{MaxIdle: tc.max}
			err := p.CheckIdle(tc.own)
			if (err != nil) != tc.refused {
				t.Fatalf("CheckIdle(%s) = %v, refused %v", tc.own, err, tc.refused)
			}
			if err != nil && (!strings.Contains(err.Error(), "idle_time_before_shutdown") || !strings.Contains(err.Error(), NameMaxIdle)) {
				t.Errorf("message %q names neither the field nor the policy", err)
			}
			d, from := p.EffectiveIdle(tc.own)
			if d != tc.want || from != tc.wantFromPoli {
				t.Errorf("EffectiveIdle(%s) = %s, %v; want %s, %v", tc.own, d, from, tc.want, tc.wantFromPoli)
			}
		})
	}
}

func TestRunDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc       string
		max, asked int64
		want       int64
		fromPolicy bool
		refused    bool
	}{
		{"no policy, no limit", 0, 0, 0, false, false},
		{"no policy keeps its own", 0, 7200, 7200, false, false},
		{"none gets the maximum", 3600, 0, 3600, true, false},
		{"under the maximum", 3600, 60, 60, false, false},
		{"the maximum", 3600, 3600, 3600, false, false},
		{"over the maximum", 3600, 3601, 0, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, from, err := Policy{MaxRunDurationSeconds: tc.max}.RunDuration(tc.asked)
			var e *api.Error
			switch {
			case tc.refused && (!errors.As(err, &e) || e.Field != "max_run_duration_seconds" || !strings.Contains(e.Message, NameMaxRunDuration)):
				t.Fatalf("err = %v, want Invalid naming max_run_duration_seconds and the policy", err)
			case !tc.refused && (err != nil || got != tc.want || from != tc.fromPolicy):
				t.Fatalf("RunDuration(%d) = %d, %v, %v; want %d, %v", tc.asked, got, from, err, tc.want, tc.fromPolicy)
			}
		})
	}
}

type auditor struct{ events []Event }

func (a *auditor) PolicyFired(_ context.Context, ev Event) { a.events = append(a.events, ev) }

func TestRecorder(t *testing.T) {
	t.Parallel()
	var none *Recorder
	none.Fire(t.Context(), Event{}) // a nil Recorder records nothing, without failing
	a := &auditor{}
	r := &Recorder{Auditor: a}
	r.Fire(t.Context(), Event{Policy: NameMaxRunDuration, Action: "stopped", Run: "run-1"})
	if len(a.events) != 1 || a.events[0].Run != "run-1" {
		t.Fatalf("auditor got %+v", a.events)
	}
}
