-- The save of a transition, as one statement that fails when the instance
-- changed since it was read: an insert that finds the key taken, or an
-- update / delete that finds another version, raises serialization_failure
-- (40001). Because it fails instead of touching no row, the runtime can
-- send it in one pipeline with the COMMIT: a conflict aborts the
-- transaction, so the COMMIT never commits the transition's messages
-- without its state.
CREATE OR REPLACE FUNCTION {{.SaveFunc}}(
	p_op        text,         -- 'i' insert, 'u' update, 'd' delete
	p_saga      text,
	p_key       text,
	p_status    text,
	p_state     jsonb,
	p_meta      jsonb,
	p_completed timestamptz,
	p_version   bigint        -- version read (0 for an insert)
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
END
$fn$;
