-- The save function keeps exactly the last {{.MaxHistory}} history entries of an
-- instance (before: trimmed every {{.MaxHistory}} versions, so 50 to 100 rows
-- were kept), the rule of every saga store (store.SagaHistoryKeep).
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
		DELETE FROM {{.History}} WHERE saga = p_saga AND key = p_key AND seq <= (
			SELECT seq FROM {{.History}} WHERE saga = p_saga AND key = p_key
			ORDER BY seq DESC OFFSET {{.MaxHistory}} LIMIT 1);
	END IF;
END
$fn$;
