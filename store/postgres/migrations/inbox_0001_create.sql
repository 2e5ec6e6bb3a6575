-- Inbox: one row per (consumer, message id) whose effect has committed.
{{if .Schema}}SELECT pg_advisory_xact_lock(7262773519184466176);
CREATE SCHEMA IF NOT EXISTS {{.Schema}};
{{end}}
CREATE TABLE {{.Table}} (
	consumer    text        NOT NULL,
	message_id  text        NOT NULL,
	received_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer, message_id)
);

CREATE INDEX {{.ReceivedAtIndex}} ON {{.Table}} (received_at);
