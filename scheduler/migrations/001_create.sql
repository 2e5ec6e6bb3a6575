CREATE TABLE IF NOT EXISTS {{.Table}} (
	id         text        PRIMARY KEY,
	topic      text        NOT NULL,
	due_at     timestamptz NOT NULL,
	uuid       text        NOT NULL,
	payload    bytea       NOT NULL,
	metadata   jsonb       NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {{.DueIndex}} ON {{.Table}} (due_at);
CREATE TABLE IF NOT EXISTS {{.Ticks}} (
	job      text        NOT NULL,
	tick     timestamptz NOT NULL,
	holder   text        NOT NULL,
	fired_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (job, tick)
);
CREATE TABLE IF NOT EXISTS {{.Leases}} (
	name       text        PRIMARY KEY,
	holder     text        NOT NULL,
	expires_at timestamptz NOT NULL
);
