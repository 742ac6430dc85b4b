-- An append sends everything up to COMMIT in one pipelined round trip
-- when it can, so a precondition that does not hold (a stream that moved,
-- a one-time value already used) must fail the transaction, which skips
-- the rest of the pipeline, rather than just return no row. Statements call
-- this inside CASE, which evaluates it only when the precondition failed.
CREATE FUNCTION strongroom_abort(code text, detail text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = detail;
END;
$$;
