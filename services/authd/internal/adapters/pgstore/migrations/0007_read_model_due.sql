-- Read-model tables gain a due column (projection.Doc.Due: when a document
-- next needs attention, such as a session's expiry) with a partial index,
-- so the expiry sweeper reads what is due instead of every document. Read
-- models are disposable: drop them all, and authd builds each one again
-- from the log when it starts (Projector.Setup).
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT viewname FROM pg_views
        WHERE schemaname = current_schema() AND viewname LIKE 'rm\_%'
    LOOP
        EXECUTE format('DROP VIEW %I', r.viewname);
    END LOOP;
    FOR r IN SELECT tablename FROM pg_tables
        WHERE schemaname = current_schema() AND tablename LIKE 'rm\_%\_g%'
    LOOP
        EXECUTE format('DROP TABLE %I', r.tablename);
    END LOOP;
END
$$;
DELETE FROM projections;
