-- Instance history: one row per committed transition (event, timeout or
-- compensation step), written by the save function in the same statement
-- as the state, so the history never disagrees with it. Rows go when their
-- instance is deleted or purged; a long-lived instance keeps about its last
-- {{.MaxHistory}} transitions (older rows are trimmed every {{.MaxHistory}} versions).
CREATE TABLE IF NOT EXISTS {{.History}} (
	saga    text        NOT NULL,
	key     text        NOT NULL,
	seq     bigint      GENERATED ALWAYS AS IDENTITY,
	version bigint      NOT NULL, -- the instance's version after the transition
	at      timestamptz NOT NULL,
	kind    text        NOT NULL, -- event, timeout or compensation
	type    text        NOT NULL, -- wire name
	status  text        NOT NULL, -- the instance's status after the transition
	note    text,
	PRIMARY KEY (saga, key, seq)
);
-- The save function with the history entries of the transition (p_history,
-- a JSON array, or NULL). The eight-argument version of 002 stays for
-- binaries that predate this migration during a rolling upgrade.
CREATE OR REPLACE FUNCTION {{.SaveFunc}}(
	p_op        text,         -- 'i' insert, 'u' update, 'd' delete
	p_saga      text,
	p_key       text,
	p_status    text,
	p_state     jsonb,
	p_meta      jsonb,
	p_completed timestamptz,
	p_version   bigint,       -- version read (0 for an insert)
	p_history   jsonb         -- [{"at":..., "kind":..., "type":..., "status":..., "note":...}] or NULL
) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
	IF p_op = 'i' THEN
		INSERT INTO {{.Table}} (saga, key, status, version, state, meta, completed_at)
		VALUES (p_saga, p_key, p_status, 1, p_state, p_meta, p_completed)
		ON CONFLICT (saga, key) DO NOTHING;
	ELSIF p_op = 'u' THEN
		UPDATE {{.Table}} SET status = p_status, version = version + 1, state = p_state, meta = p_meta,
			completed_at = p_completed, updated_at = now()
		WHERE saga = p_saga AND key = p_key AND version = p_version;
	ELSE
		DELETE FROM {{.Table}} WHERE saga = p_saga AND key = p_key AND version = p_version;
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'saga % key %: instance changed concurrently (expected version %)', p_saga, p_key, p_version
			USING ERRCODE = 'serialization_failure';
	END IF;
	IF p_op = 'd' THEN
		DELETE FROM {{.History}} WHERE saga = p_saga AND key = p_key;
	ELSIF p_history IS NOT NULL THEN
		INSERT INTO {{.History}} (saga, key, version, at, kind, type, status, note)
		SELECT p_saga, p_key, p_version + 1, h.at, h.kind, h.type, h.status, h.note
		FROM jsonb_to_recordset(p_history) AS h(at timestamptz, kind text, type text, status text, note text);
		IF (p_version + 1) % {{.MaxHistory}} = 0 THEN
			DELETE FROM {{.History}} WHERE saga = p_saga AND key = p_key AND version <= p_version + 1 - {{.MaxHistory}};
		END IF;
	END IF;
END
$fn$;
