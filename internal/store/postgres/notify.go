package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/paddock-ml/paddock/internal/backoff"
)

// WatchChanges implements store.Changes with LISTEN on a connection of its
// own. Writes that change a run (SaveBatch, AppendLogs, AddMetrics) notify
// the run's id in their transaction, so a follower hears of it when it
// commits. After the connection is lost and made again, resync is called:
// what happened in between was not heard. A server is not told of its own
// changes (each payload names the store that sent it).
func (s *Store) WatchChanges(ctx context.Context, runChanged func(ids []string), leaderChanged func(), resync func()) {
	retry := backoff.New(100*time.Millisecond, 5*time.Second)
	first := true
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, s.cfg.ConnConfig)
		if err == nil {
			_, err = conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.chRuns}.Sanitize()+`; LISTEN `+pgx.Identifier{s.chLeader}.Sanitize())
		}
		if err == nil {
			if !first {
				resync()
				leaderChanged()
			}
			first = false
			retry.Reset()
			for {
				n, werr := conn.WaitForNotification(ctx)
				if werr != nil {
					err = werr
					break
				}
				switch n.Channel {
				case s.chRuns:
					origin, ids, _ := strings.Cut(n.Payload, "|")
					if origin != s.origin { // this server's own changes woke its watchers already
						runChanged(strings.Split(ids, ","))
					}
				case s.chLeader:
					leaderChanged()
				}
			}
		}
		if conn != nil {
			conn.Close(context.Background())
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("listening for changes: the connection was lost; reconnecting", "err", redact(err))
		if !retry.Wait(ctx) {
			return
		}
	}
}
