package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/eventstore/storetest"
	"strongroom.dev/services/authd/internal/pgtest"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/readmodel"
)

func TestMigrateFromEmptyIsIdempotentAndConcurrent(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	// Eight migrators at once, as replicas starting together would be.
	var wg sync.WaitGroup
	var applied atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := Migrate(ctx, pool)
			if err != nil {
				t.Error(err)
			}
			applied.Add(int64(len(got)))
		}()
	}
	wg.Wait()
	if int(applied.Load()) != len(ms) {
		t.Fatalf("applied %d migrations in all, want each of %d exactly once", applied.Load(), len(ms))
	}
	again, err := Migrate(ctx, pool)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run applied %v, %v", again, err)
	}
	for _, table := range []string{"events", "streams", "projections", "watermill_" + OutboxTopic, "watermill_offsets_" + OutboxTopic} {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
			t.Errorf("table %s: %v", table, err)
		}
	}
	// A database migrated by a newer binary is refused, not half-used.
	if _, err := pool.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')"); err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, pool); err == nil || !strings.Contains(err.Error(), "newer schema") {
		t.Fatalf("newer schema: %v", err)
	}
}

func TestEventsAreImmutable(t *testing.T) {
	pool := migrated(t)
	s := New(pool)
	ctx := context.Background()
	if _, err := s.Append(ctx, storetest.Enroll("dev-1", "u")); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"UPDATE events SET type = 'device.revoked'",
		"DELETE FROM events",
		"TRUNCATE events",
	} {
		if _, err := pool.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want refusal", sql, err)
		}
	}
	evs, _ := s.ReadStream(ctx, "dev-1", 0)
	if len(evs) != 1 || evs[0].Type != events.DeviceEnrolled {
		t.Fatalf("events changed: %+v", evs)
	}
}

// TestPagingNeverSkipsLateCommits holds 32 append transactions open for
// random times, so they commit in a different order than they took their
// sequence numbers; a reader paging concurrently must see every event once.
func TestPagingNeverSkipsLateCommits(t *testing.T) {
	pool := migrated(t)
	s := New(pool)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const writers, rounds = 32, 3
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					a := storetest.Enroll(fmt.Sprintf("dev-%d-%d", w, r), "u")
					if _, err := s.AppendTx(ctx, tx, a); err != nil {
						return err
					}
					time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	seen := map[string]bool{}
	pos := eventstore.Start
	for len(seen) < writers*rounds && ctx.Err() == nil {
		page, err := s.ReadAll(ctx, pos, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page {
			if seen[ev.StreamID] {
				t.Fatalf("%s seen twice", ev.StreamID)
			}
			seen[ev.StreamID] = true
			pos = ev.Position
		}
	}
	wg.Wait()
	if len(seen) != writers*rounds {
		t.Fatalf("saw %d of %d events", len(seen), writers*rounds)
	}
	// Control: ordering by seq alone would have skipped some, i.e. commit
	// order differed from sequence order somewhere.
	rows, err := pool.Query(ctx, "SELECT seq FROM events ORDER BY tx_id, seq")
	if err != nil {
		t.Fatal(err)
	}
	seqs, _ := pgx.CollectRows(rows, pgx.RowTo[int64])
	inversions := 0
	for i := 1; i < len(seqs); i++ {
		if seqs[i] < seqs[i-1] {
			inversions++
		}
	}
	t.Logf("%d places where commit order differs from sequence order", inversions)
}

func TestRolledBackAppendIsNeverDelivered(t *testing.T) {
	pool := migrated(t)
	s, p := harness(t, pool, nil, []projection.Projection{readmodel.Devices(events.Default)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errBoom := errors.New("boom")
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := s.AppendTx(ctx, tx, storetest.Enroll("dev-ghost", "u")); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	real, err := s.Append(ctx, storetest.Enroll("dev-real", "u"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	storetest.WaitCaughtUp(t, p, storetest.Last(real))
	if _, ok, _ := p.Get(ctx, readmodel.DevicesName, "dev-ghost"); ok {
		t.Fatal("a rolled-back append reached the read model")
	}
	if _, ok, _ := p.Get(ctx, readmodel.DevicesName, "dev-real"); !ok {
		t.Fatal("committed append not delivered")
	}
	var outbox int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM watermill_events").Scan(&outbox); err != nil || outbox != 1 {
		t.Fatalf("outbox holds %d messages, want 1 (%v)", outbox, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// crashing fails (like a process dying) once it has applied n events,
// without committing the event that crashes.
type crashing struct {
	projection.Projection
	mu      sync.Mutex
	applied int
	crashAt int
	crash   func()
}

func (c *crashing) Apply(cur *projection.Doc, ev eventstore.Event) (*projection.Doc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied++
	if c.applied == c.crashAt {
		c.crash()
		return nil, errors.New("crashed")
	}
	return c.Projection.Apply(cur, ev)
}

// TestCrashMidBatchRedeliversAndEndsExact stops a subscriber in the middle
// of a delivered batch; a new one re-delivers and the read model ends up
// exactly equal to a fresh rebuild.
func TestCrashMidBatchRedeliversAndEndsExact(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	for round := range 3 {
		crashCtx, crash := context.WithCancel(ctx)
		c := &crashing{Projection: readmodel.Devices(events.Default), crashAt: 7 + round*5, crash: crash}
		// Batches of 4: the crash comes after earlier batches committed
		// their documents and position but before watermill acked them.
		s, p := harness(t, pool, nil, []projection.Projection{c}, withBatch(4))
		// A batch's worth of events committed while no subscriber runs.
		var appends []eventstore.Append
		for i := range 25 {
			appends = append(appends, storetest.Enroll(fmt.Sprintf("dev-%d-%d", round, i), "u"))
		}
		evs, err := s.Append(ctx, appends...)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(crashCtx); err != nil {
			t.Fatal(err)
		}
		sts, _ := p.Status(ctx)
		if sts[0].LagEvents == 0 {
			t.Fatalf("round %d: the crash left nothing to redeliver", round)
		}
		// Restart with a healthy projection of the same name.
		_, p2 := harness(t, pool, nil, []projection.Projection{readmodel.Devices(events.Default)})
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p2.Run(runCtx) }()
		storetest.WaitCaughtUp(t, p2, storetest.Last(evs))
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		incremental, _ := p2.All(ctx, readmodel.DevicesName)
		if len(incremental) != 25*(round+1) {
			t.Fatalf("round %d: %d devices, want %d", round, len(incremental), 25*(round+1))
		}
		if err := p2.Rebuild(ctx, readmodel.DevicesName); err != nil {
			t.Fatal(err)
		}
		rebuilt, _ := p2.All(ctx, readmodel.DevicesName)
		if len(rebuilt) != len(incremental) {
			t.Fatalf("rebuilt %d rows, incremental %d", len(rebuilt), len(incremental))
		}
		for i := range rebuilt {
			if rebuilt[i].Key != incremental[i].Key || string(rebuilt[i].Data) != string(incremental[i].Data) {
				t.Fatalf("row %d differs: %s vs %s", i, rebuilt[i].Data, incremental[i].Data)
			}
		}
	}
}

// TestGarbageRows writes rows no append would write and checks that every
// reader answers with a typed error or a clean decode, never a panic.
func TestGarbageRows(t *testing.T) {
	pool := migrated(t)
	s, p := harness(t, pool, nil, []projection.Projection{readmodel.Devices(events.Default)})
	ctx := context.Background()
	insert := func(stream, typ string, schema int, data, meta string) {
		t.Helper()
		_, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, type, schema_version,
			occurred_at, data, metadata) VALUES (gen_random_uuid(), $1, 'device', 1, $2, $3, now(), $4, $5)`,
			stream, typ, schema, data, meta)
		if err != nil {
			t.Fatal(err)
		}
	}
	insert("g-unknown", "device.exploded", 1, `{}`, `{}`)
	insert("g-future", events.DeviceEnrolled, 99, `{"user_id":"u"}`, `{}`)
	insert("g-null", events.DeviceEnrolled, 1, `null`, `{}`)
	insert("g-array", events.DeviceLocked, 1, `[1,2]`, `{}`)
	insert("g-wrongtype", events.DeviceEnrolled, 1, `{"user_id": 42}`, `{}`)
	var evs []eventstore.Event
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		// Committed rows become readable once older transactions end.
		if evs, err = s.ReadAll(ctx, eventstore.Start, 100); err != nil || len(evs) == 5 {
			break
		}
	}
	if err != nil || len(evs) != 5 {
		t.Fatalf("read %d garbage rows, %v", len(evs), err)
	}
	want := []error{events.ErrUnknownType, events.ErrUnknownVersion, events.ErrMalformed, events.ErrMalformed, events.ErrMalformed}
	for i, ev := range evs {
		_, err := events.Default.Decode(ev.Type, ev.SchemaVersion, ev.Data)
		if !errors.Is(err, want[i]) {
			t.Errorf("%s: decode err = %v, want %v", ev.StreamID, err, want[i])
		}
	}
	// Broken metadata is a typed error of the reader.
	insert("g-meta", events.DeviceEnrolled, 1, `{}`, `"not an object"`)
	if _, err := s.ReadStream(ctx, "g-meta", 0); !errors.Is(err, ErrCorruptEvent) {
		t.Fatalf("broken metadata: %v", err)
	}
	// The projection does not skip what it cannot read: it stalls, and its
	// lag shows it, instead of silently building a wrong read model.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	time.Sleep(300 * time.Millisecond)
	sts, err := p.Status(ctx)
	if err != nil || sts[0].LagEvents == 0 {
		t.Fatalf("status = %+v, %v: want a stalled projection", sts, err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestUpcastingFromStoredRows stores a version-1 payload and reads it
// through a registry whose current version is 2.
func TestUpcastingFromStoredRows(t *testing.T) {
	type v1 struct {
		Name string `json:"name"`
	}
	type v2 struct {
		GivenName string `json:"given_name"`
		Source    string `json:"source"`
	}
	old := events.MustRegistry(events.Schema{Type: "thing.happened", Version: 1, Payload: v1{}})
	current := events.MustRegistry(events.Schema{Type: "thing.happened", Version: 2, Payload: v2{},
		Upcasters: map[int]events.Upcaster{1: func(b json.RawMessage) (json.RawMessage, error) {
			var o v1
			if err := unmarshalStrict(b, &o); err != nil {
				return nil, err
			}
			return marshal(v2{GivenName: o.Name, Source: "v1"})
		}}})
	pool := migrated(t)
	ctx := context.Background()
	if _, err := New(pool, WithRegistry(old)).Append(ctx, eventstore.Append{StreamID: "t-1", StreamType: "thing",
		Events: []eventstore.Pending{{Type: "thing.happened", Payload: v1{Name: "Ada"}}}}); err != nil {
		t.Fatal(err)
	}
	evs, err := New(pool, WithRegistry(current)).ReadStream(ctx, "t-1", 0)
	if err != nil || len(evs) != 1 || evs[0].SchemaVersion != 1 {
		t.Fatalf("read: %+v, %v", evs, err)
	}
	got, err := events.DecodeAs[v2](current, evs[0].Type, evs[0].SchemaVersion, evs[0].Data)
	if err != nil || got.GivenName != "Ada" || got.Source != "v1" {
		t.Fatalf("upcast = %+v, %v", got, err)
	}
}

// TestReadModelsRebuiltAfterMigration0007: migration 0007 drops every
// read model (their tables gained a due column); the next start builds
// each one again from the log, equal to what it was, due times included.
func TestReadModelsRebuiltAfterMigration0007(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	inline := []projection.Projection{storetest.StreamHeads()}
	s, _ := harness(t, pool, inline, nil)
	for i := range 5 {
		storetestAppend(t, s, storetest.Enroll(fmt.Sprintf("dev-m%d", i), "u"))
	}
	storetestAppend(t, s, storetest.Then("dev-m0", 1, storetest.Lock("x")))
	_, p := harness(t, pool, inline, nil)
	before, err := p.All(ctx, storetest.StreamHeadsName)
	if err != nil || len(before) != 5 {
		t.Fatalf("before: %d documents, %v", len(before), err)
	}
	// Run 0007 again, as on a database that predates it.
	if _, err := pool.Exec(ctx, "DELETE FROM schema_migrations WHERE version >= 7"); err != nil {
		t.Fatal(err)
	}
	if applied, err := Migrate(ctx, pool); err != nil || len(applied) == 0 {
		t.Fatalf("migrate: %v, %v", applied, err)
	}
	var views int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_views WHERE viewname LIKE 'rm\\_%'").Scan(&views); err != nil || views != 0 {
		t.Fatalf("%d read-model views left after 0007 (%v)", views, err)
	}
	_, p = harness(t, pool, inline, nil)
	after, err := p.All(ctx, storetest.StreamHeadsName)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("rebuilt %d documents, had %d", len(after), len(before))
	}
	for i := range before {
		if before[i].Key != after[i].Key || string(before[i].Data) != string(after[i].Data) || !before[i].Due.Equal(after[i].Due) || before[i].Due.IsZero() {
			t.Fatalf("document %d: %+v, was %+v", i, after[i], before[i])
		}
	}
}

func storetestAppend(t *testing.T, s *Store, a eventstore.Append) {
	t.Helper()
	if _, err := s.Append(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

// TestPruneOutbox (and the backlog gauge's count): messages every consumer
// group has acknowledged, and older than the retention, are deleted; newer ones, and ones a group has
// not acknowledged yet, stay; the read model is unaffected.
func TestPruneOutbox(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	s, p := harness(t, pool, nil, []projection.Projection{readmodel.Devices(events.Default)})
	count := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM "watermill_events"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Nothing acknowledged yet (no subscriber ran): nothing goes.
	for i := range 10 {
		storetestAppend(t, s, storetest.Enroll(fmt.Sprintf("dev-p%d", i), "u"))
	}
	if n, err := p.PruneOutbox(ctx, 0); err != nil || n != 0 {
		t.Fatalf("pruned %d before any acknowledgement (%v)", n, err)
	}
	// The backlog gauge counts every message no group has acknowledged.
	if n, err := p.OutboxBacklog(ctx); err != nil || n != int64(count()) || n == 0 {
		t.Fatalf("backlog %d (%v) before any acknowledgement, want all %d messages", n, err, count())
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	evs, err := s.Append(ctx, storetest.Enroll("dev-p10", "u"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.WaitCaughtUp(t, p, storetest.Last(evs))
	// Acknowledgements are written after handling: wait for the last one.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var acked int64
		_ = pool.QueryRow(ctx, `SELECT coalesce(max(offset_acked), 0) FROM "watermill_offsets_events"`).Scan(&acked)
		var last int64
		_ = pool.QueryRow(ctx, `SELECT max("offset") FROM "watermill_events"`).Scan(&last)
		if acked == last || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, err := p.OutboxBacklog(ctx); err != nil || n != 0 {
		t.Fatalf("backlog %d (%v) once everything is acknowledged", n, err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Written while no subscriber runs: not acknowledged.
	for i := range 3 {
		storetestAppend(t, s, storetest.Enroll(fmt.Sprintf("dev-q%d", i), "u"))
	}
	if n, err := p.PruneOutbox(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("pruned %d messages younger than the retention (%v)", n, err)
	}
	before := count()
	n, err := p.PruneOutbox(ctx, 0)
	if err != nil || n != 11 || count() != before-11 || count() != 3 {
		t.Fatalf("pruned %d of %d (%v), %d left", n, before, err, count())
	}
	if docs, _ := p.All(ctx, readmodel.DevicesName); len(docs) != 11 {
		t.Fatalf("%d devices in the read model after pruning", len(docs))
	}
}

// TestAsyncCommitIsPerTransaction: the projections' transactions commit
// asynchronously, at the isolation level asked for, and the setting ends
// with the transaction: the next user of the connection (an append)
// commits synchronously again.
func TestAsyncCommitIsPerTransaction(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	show := func(q pgx.Tx, setting string) string {
		var v string
		if err := q.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, o := range []pgx.TxOptions{{}, {IsoLevel: pgx.RepeatableRead}, {IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly}} {
		tx, err := conn.BeginTx(ctx, asyncCommit(o))
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		want := "read committed"
		if o.IsoLevel != "" {
			want = string(o.IsoLevel)
		}
		if got := show(tx, "synchronous_commit"); got != "off" {
			t.Errorf("%+v: synchronous_commit = %s inside the transaction", o, got)
		}
		if got := show(tx, "transaction_isolation"); got != want {
			t.Errorf("%+v: isolation = %s, want %s", o, got, want)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		var after string
		if err := conn.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&after); err != nil {
			t.Fatal(err)
		}
		if after != "on" {
			t.Fatalf("synchronous_commit = %s after the transaction", after)
		}
	}
	// The subscribers' connection wrapper does the same.
	tx, err := asyncCommitConn{pool}.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if got := show(tx, "synchronous_commit"); got != "off" {
		t.Errorf("subscriber transaction: synchronous_commit = %s", got)
	}
}

// TestScopedProjectionSkipsOtherStreams: the devices projection reads only
// device streams, so a burst of session events costs it no catch-up per
// event; its lag counts only device events; it still follows the log
// (a trailing catch-up), and a device event is applied at once.
func TestScopedProjectionSkipsOtherStreams(t *testing.T) {
	pool := migrated(t)
	ctx := context.Background()
	s, p := harness(t, pool, nil, []projection.Projection{readmodel.Devices(events.Default)})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	evs, err := s.Append(ctx, storetest.Enroll("dev-s0", "u"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.WaitCaughtUp(t, p, storetest.Last(evs))
	// A listener of its own counts the notifications the burst sends.
	listener, err := pgx.Connect(ctx, pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		t.Fatal(err)
	}
	notified := func(wait time.Duration) bool {
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		_, err := listener.WaitForNotification(wctx)
		return err == nil
	}
	// The enrolment's own notification is sent after its commit, from a
	// goroutine: on a busy machine it may arrive only now. Let it pass.
	for s.notifying.Load() {
		time.Sleep(time.Millisecond)
	}
	for notified(100 * time.Millisecond) {
	}
	before := p.catchUps.Load()
	var last []eventstore.Event
	const burst = 60
	for i := range burst {
		if last, err = s.Append(ctx, eventstore.Append{StreamID: fmt.Sprintf("sess-%d", i), StreamType: events.StreamSession,
			ExpectedVersion: eventstore.NoStream, Events: []eventstore.Pending{{Type: events.SessionRevoked,
				Payload: events.SessionRevokedV1{Reason: "signed_out"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	if notified(200 * time.Millisecond) {
		t.Fatal("appends to streams no projection reads woke the subscribers")
	}
	sts, err := p.Status(ctx)
	if err != nil || sts[0].LagEvents != 0 || sts[0].LagSeconds != 0 {
		t.Fatalf("session events count as the devices projection's lag: %+v %v", sts, err)
	}
	// It still follows the log, within about skipFor.
	storetest.WaitCaughtUp(t, p, storetest.Last(last))
	if n := p.catchUps.Load() - before; n > burst/4 {
		t.Fatalf("%d catch-up transactions for %d session events", n, burst)
	}
	// A device event is applied at once, not after skipFor.
	start := time.Now()
	evs, err = s.Append(ctx, storetest.Enroll("dev-s1", "u"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.WaitCaughtUp(t, p, storetest.Last(evs))
	if !notified(5 * time.Second) {
		t.Fatal("a device append sent no notification")
	}
	if docs, _ := p.All(ctx, readmodel.DevicesName); len(docs) != 2 {
		t.Fatalf("%d devices in the read model", len(docs))
	}
	t.Logf("device event applied %v after its append; %d catch-ups for %d session events",
		time.Since(start).Round(time.Millisecond), p.catchUps.Load()-before, burst)
}
