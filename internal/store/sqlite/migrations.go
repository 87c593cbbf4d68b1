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
