package sqlite

// migrations are applied in order, each once, in its own transaction; the
// version of migrations[i] is i+1. Never edit a migration that has shipped:
// append a new one.
var migrations = []string{
	// 1: workspaces, users, compute targets.
	`CREATE TABLE workspaces (
		name       TEXT PRIMARY KEY,
		created_at TEXT NOT NULL
	);
	CREATE TABLE users (
		name       TEXT PRIMARY KEY,
		admin      INTEGER NOT NULL DEFAULT 0,
		token_hash TEXT NOT NULL UNIQUE,
		created_at TEXT NOT NULL
	);
	CREATE TABLE computes (
		workspace   TEXT NOT NULL REFERENCES workspaces(name),
		name_key    TEXT NOT NULL,            -- lower(name): names are unique case-insensitively
		name        TEXT NOT NULL,
		type        TEXT NOT NULL,
		state       TEXT NOT NULL,
		errors      TEXT NOT NULL DEFAULT '[]',
		created_by  TEXT NOT NULL,
		created_at  TEXT NOT NULL,
		updated_at  TEXT NOT NULL,
		properties  TEXT NOT NULL,
		secrets     BLOB,                     -- AES-GCM sealed JSON, see internal/secret
		secrets_set TEXT NOT NULL DEFAULT '[]',
		status      TEXT NOT NULL DEFAULT '{}',
		version     INTEGER NOT NULL,
		PRIMARY KEY (workspace, name_key)
	);
	CREATE INDEX computes_state ON computes(state);`,
}

func init() {
	migrations = append(migrations,
		// 2: runs, their logs and metrics, and the nodes that run them.
		`CREATE TABLE runs (
			id          TEXT PRIMARY KEY,
			workspace   TEXT NOT NULL REFERENCES workspaces(name),
			compute     TEXT NOT NULL,             -- lower-case target name
			seq         INTEGER NOT NULL,          -- submission order: the queue is FIFO on it
			status      TEXT NOT NULL,
			node        TEXT NOT NULL DEFAULT '',  -- node of the current attempt
			token_hash  TEXT NOT NULL DEFAULT '',  -- the run-scoped token (PADDOCK_RUN_TOKEN)
			idem_key    TEXT NOT NULL DEFAULT '',  -- Idempotency-Key of the submit, per workspace and user
			created_by  TEXT NOT NULL,
			created_at  TEXT NOT NULL,
			data        TEXT NOT NULL              -- the rest of the run as JSON
		);
		CREATE INDEX runs_ws_seq ON runs(workspace, seq);
		CREATE INDEX runs_active ON runs(status) WHERE status NOT IN ('Completed','Failed','Canceled');
		CREATE INDEX runs_token ON runs(token_hash) WHERE token_hash != '';
		CREATE UNIQUE INDEX runs_idem ON runs(workspace, created_by, idem_key) WHERE idem_key != '';
		CREATE TABLE run_logs (
			seq     INTEGER PRIMARY KEY AUTOINCREMENT,  -- the cursor users follow
			run_id  TEXT NOT NULL,
			attempt INTEGER NOT NULL,
			aseq    INTEGER NOT NULL,                   -- the agent's line number within the attempt
			stream  TEXT NOT NULL,
			ts      TEXT NOT NULL,
			line    TEXT NOT NULL,
			UNIQUE (run_id, attempt, aseq)
		);
		CREATE TABLE run_metrics (
			run_id TEXT NOT NULL,
			name   TEXT NOT NULL,
			step   INTEGER NOT NULL,
			value  REAL NOT NULL,
			ts     TEXT NOT NULL
		);
		CREATE INDEX run_metrics_run ON run_metrics(run_id, name, step);
		CREATE TABLE nodes (
			id         TEXT PRIMARY KEY,
			workspace  TEXT NOT NULL,
			compute    TEXT NOT NULL,
			token_hash TEXT NOT NULL UNIQUE,
			created_at TEXT NOT NULL,
			data       TEXT NOT NULL
		);`,
		// 3: log lines of multi-node runs are numbered per node (rank).
		`CREATE TABLE run_logs_v3 (
			seq     INTEGER PRIMARY KEY AUTOINCREMENT,
			run_id  TEXT NOT NULL,
			attempt INTEGER NOT NULL,
			rank    INTEGER NOT NULL DEFAULT 0,
			aseq    INTEGER NOT NULL,
			stream  TEXT NOT NULL,
			ts      TEXT NOT NULL,
			line    TEXT NOT NULL,
			UNIQUE (run_id, attempt, rank, aseq)
		);
		INSERT INTO run_logs_v3(seq, run_id, attempt, rank, aseq, stream, ts, line)
			SELECT seq, run_id, attempt, 0, aseq, stream, ts, line FROM run_logs;
		DROP TABLE run_logs;
		ALTER TABLE run_logs_v3 RENAME TO run_logs;`,
		// 4: core quotas per workspace ('' family) and per size family.
		`CREATE TABLE quotas (
			workspace         TEXT NOT NULL,
			family            TEXT NOT NULL,
			dedicated_cores   INTEGER NOT NULL,  -- -1: no limit
			lowpriority_cores INTEGER NOT NULL,
			PRIMARY KEY (workspace, family)
		);`,
		// 5: teams: a user has named tokens (expiring, revocable) instead
		// of one, and a role per workspace; the admin is Owner everywhere.
		`CREATE TABLE users_v5 (
			name       TEXT PRIMARY KEY,
			admin      INTEGER NOT NULL DEFAULT 0,
			created_at TEXT NOT NULL
		);
		INSERT INTO users_v5(name, admin, created_at) SELECT name, admin, created_at FROM users;
		CREATE TABLE tokens (
			id           TEXT PRIMARY KEY,
			user_name    TEXT NOT NULL,
			name         TEXT NOT NULL,
			hash         TEXT NOT NULL UNIQUE,   -- hex SHA-256; the token itself is never stored
			created_at   TEXT NOT NULL,
			expires_at   TEXT,
			last_used_at TEXT,
			revoked_at   TEXT
		);
		CREATE UNIQUE INDEX tokens_live_name ON tokens(user_name, name) WHERE revoked_at IS NULL;
		INSERT INTO tokens(id, user_name, name, hash, created_at)
			SELECT 'tok-' || substr(token_hash, 1, 12), name, CASE WHEN admin THEN 'admin' ELSE 'default' END, token_hash, created_at FROM users;
		DROP TABLE users;
		ALTER TABLE users_v5 RENAME TO users;
		CREATE TABLE roles (
			workspace TEXT NOT NULL,
			user_name TEXT NOT NULL,
			role      TEXT NOT NULL,
			PRIMARY KEY (workspace, user_name)
		);
		INSERT INTO roles(workspace, user_name, role)
			SELECT w.name, u.name, 'Contributor' FROM workspaces w, users u WHERE NOT u.admin;`,
		// 6: the audit log: append-only, each entry hashed with the one
		// before it.
		`CREATE TABLE audit (
			seq       INTEGER PRIMARY KEY,
			at        TEXT NOT NULL,
			workspace TEXT NOT NULL,
			user_name TEXT NOT NULL,
			token_id  TEXT NOT NULL,
			action    TEXT NOT NULL,
			target    TEXT NOT NULL,
			source    TEXT NOT NULL,
			outcome   TEXT NOT NULL,
			status    INTEGER NOT NULL,
			message   TEXT NOT NULL,
			prev_hash TEXT NOT NULL,
			hash      TEXT NOT NULL
		);
		CREATE INDEX audit_at ON audit(at);`,
	)
}

// Issue 16 (identities for runs, admin policy): managed identities and
// workspace policies.
func init() {
	migrations = append(migrations,
		// identities: a workspace's managed identities. A UserAssigned
		// identity is made by a user; a SystemAssigned one belongs to one
		// cluster (target) and is named after it, so the type is part of
		// the key.
		`CREATE TABLE identities (
			workspace    TEXT NOT NULL REFERENCES workspaces(name),
			type         TEXT NOT NULL,            -- UserAssigned | SystemAssigned
			name_key     TEXT NOT NULL,            -- lower(name): names are unique case-insensitively
			name         TEXT NOT NULL,
			principal_id TEXT NOT NULL,
			target       TEXT NOT NULL DEFAULT '', -- the cluster of a SystemAssigned identity
			description  TEXT NOT NULL DEFAULT '',
			created_by   TEXT NOT NULL,
			created_at   TEXT NOT NULL,
			updated_at   TEXT NOT NULL,
			secrets      BLOB,                     -- AES-GCM sealed JSON, see internal/secret
			secret_keys  TEXT NOT NULL DEFAULT '[]',
			version      INTEGER NOT NULL,
			PRIMARY KEY (workspace, type, name_key)
		);
		CREATE TABLE workspace_policies (
			workspace                TEXT PRIMARY KEY REFERENCES workspaces(name),
			max_idle_seconds         INTEGER NOT NULL DEFAULT 0,  -- 0: no limit
			max_run_duration_seconds INTEGER NOT NULL DEFAULT 0,  -- 0: no limit
			updated_by               TEXT NOT NULL,
			updated_at               TEXT NOT NULL
		);`,
	)
}

// Issue 18 (SDK), migration 8, after issue 16's 7: metrics that are
// strings, table rows, JSON values or images (kind, text); run tags, which
// runs and users change at any time, so they live beside the run's record
// that the dispatcher rewrites; and environments registered under a name,
// by version.
func init() {
	migrations = append(migrations,
		`ALTER TABLE run_metrics ADD COLUMN kind TEXT NOT NULL DEFAULT '';   -- '' number, string, row, json, image
		ALTER TABLE run_metrics ADD COLUMN text TEXT NOT NULL DEFAULT '';    -- a string, an image's file, or JSON (row, json)
		CREATE TABLE run_tags (
			run_id TEXT NOT NULL,
			key    TEXT NOT NULL,
			value  TEXT NOT NULL,
			PRIMARY KEY (run_id, key)
		);
		CREATE TABLE environments (
			workspace  TEXT NOT NULL,
			name_key   TEXT NOT NULL,            -- lower(name): names are unique case-insensitively
			version    INTEGER NOT NULL,
			name       TEXT NOT NULL,
			data       TEXT NOT NULL,            -- environment, env, description as JSON
			created_by TEXT NOT NULL,
			created_at TEXT NOT NULL,
			PRIMARY KEY (workspace, name_key, version)
		);`,
	)
}

// Issue 15 (the studio), migration 9, after issue 18's 8: runs are listed
// a page at a time, newest first, filtered by compute, status, experiment
// or user, and stay fast at 100,000 runs (keyset paging on seq, an index
// per filter); a run's page reads its log's tail and pages backwards from
// it (run_logs by run, seq).
func init() {
	migrations = append(migrations,
		`ALTER TABLE runs ADD COLUMN experiment TEXT NOT NULL DEFAULT '';
		UPDATE runs SET experiment = COALESCE(json_extract(data, '$.experiment'), '');
		CREATE INDEX runs_ws_compute_seq ON runs(workspace, compute, seq);
		CREATE INDEX runs_ws_status_seq ON runs(workspace, status, seq);
		CREATE INDEX runs_ws_experiment_seq ON runs(workspace, experiment, seq);
		CREATE INDEX runs_ws_user_seq ON runs(workspace, created_by, seq);
		CREATE INDEX run_logs_run_seq ON run_logs(run_id, seq);`,
	)
}
