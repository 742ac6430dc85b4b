-- Refresh tokens now carry their session id under a MAC tag, and access
-- tokens are looked up by their session's id (their sid claim), so the
-- inline refresh_tokens and access_tokens read models are gone. Drop their
-- views, every generation of their tables, and their positions.
DROP VIEW IF EXISTS rm_access_tokens, rm_refresh_tokens;
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables
        WHERE schemaname = current_schema()
          AND (tablename LIKE 'rm\_access\_tokens\_g%' OR tablename LIKE 'rm\_refresh\_tokens\_g%')
    LOOP
        EXECUTE format('DROP TABLE %I', t);
    END LOOP;
END
$$;
DELETE FROM projections WHERE name IN ('access_tokens', 'refresh_tokens');
