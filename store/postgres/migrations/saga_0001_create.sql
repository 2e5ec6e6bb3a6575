-- Saga instances: one row per (saga, key). state is the user's state struct,
-- meta the runtime's bookkeeping (pending timeouts, compensations, failure).
-- version drives optimistic concurrency: every update is
-- "WHERE version = <version read>". No index covers a column that a
-- transition changes (state, meta, version, updated_at), and the fillfactor
-- leaves room on each page, so transitions are HOT updates that write no
-- index entries.
CREATE TABLE IF NOT EXISTS {{.Table}} (
	saga         text        NOT NULL,
	key          text        NOT NULL,
	status       text        NOT NULL,
	version      bigint      NOT NULL,
	state        jsonb       NOT NULL,
	meta         jsonb       NOT NULL DEFAULT '{}',
	created_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now(),
	completed_at timestamptz,
	PRIMARY KEY (saga, key)
) WITH (fillfactor = 70);
CREATE INDEX IF NOT EXISTS {{.CompletedIndex}} ON {{.Table}} (completed_at) WHERE completed_at IS NOT NULL;
