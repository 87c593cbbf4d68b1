package sim

import (
	"testing"
	"time"

	"github.com/paddock-ml/paddock/api"
)

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		name string
		as   api.Assignment
		want time.Duration
	}{
		{"env wins", api.Assignment{Env: map[string]string{"SIM_SECONDS": "1.5"}, Command: []string{"sleep", "9"}}, 1500 * time.Millisecond},
		{"sleep N", api.Assignment{Command: []string{"sleep", "2"}}, 2 * time.Second},
		{"other command", api.Assignment{Command: []string{"python3", "train.py"}}, 0},
		{"sleep with more args", api.Assignment{Command: []string{"sleep", "2", "3"}}, 0},
		{"bad env falls back", api.Assignment{Env: map[string]string{"SIM_SECONDS": "x"}, Command: []string{"sleep", "0.25"}}, 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := duration(tc.as); got != tc.want {
				t.Fatalf("duration = %v, want %v", got, tc.want)
			}
		})
	}
}
