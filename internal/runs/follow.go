package runs

import (
	"context"
	"time"

	"github.com/paddock-ml/paddock/api"
)

// maxWatch bounds how long a client may wait for a run to change.
const maxWatch = 60 * time.Second

// Wait returns a run once its status is no longer status (or, with
// hasReason, its status reason no longer reason), or when timeout passes
// (at most a minute), so clients follow a run without polling. An empty
// status returns at once.
func (s *Service) Wait(ctx context.Context, ws, id string, status api.RunStatus, reason string, hasReason bool, timeout time.Duration) (api.Run, error) {
	s.init()
	deadline := s.Clock.NewTimer(min(max(timeout, 0), maxWatch))
	defer deadline.Stop()
	for {
		changed := s.Dispatch.Watch(id)
		run, err := s.Store.GetRun(ctx, ws, id)
		if err != nil {
			return api.Run{}, err
		}
		if status == "" || run.Status != status || hasReason && run.StatusReason != reason {
			return s.view(ctx, run, true)
		}
		select {
		case <-changed:
		case <-deadline.C():
			status = ""
		case <-ctx.Done():
			return api.Run{}, ctx.Err()
		}
	}
}

// logPage is how many lines are read from the store at once.
const logPage = 1000

// Logs sends a run's log lines after the cursor to emit, in order. With
// follow it goes on as lines arrive, until the run has ended and every
// line was sent; flush is called whenever it is about to wait. A failing
// emit ends it.
func (s *Service) Logs(ctx context.Context, ws, id string, after int64, follow bool, emit func(api.LogLine) error, flush func()) error {
	s.init()
	if _, err := s.Store.GetRun(ctx, ws, id); err != nil {
		return err
	}
	for {
		changed := s.Dispatch.Watch(id)
		lines, err := s.Store.Logs(ctx, id, after, logPage)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if err := emit(l); err != nil {
				return err
			}
			after = l.Seq
		}
		if len(lines) == logPage {
			continue
		}
		flush()
		if !follow {
			return nil
		}
		run, err := s.Store.GetRun(ctx, ws, id)
		if err != nil {
			return err
		}
		if run.Status.Terminal() {
			// Lines that arrived between the read and the status check.
			more, _ := s.Store.Logs(ctx, id, after, logPage)
			if len(more) == 0 {
				return nil
			}
			continue
		}
		idle := s.Clock.NewTimer(15 * time.Second)
		select {
		case <-changed:
		case <-idle.C():
		case <-ctx.Done():
			idle.Stop()
			return nil
		}
		idle.Stop()
	}
}
