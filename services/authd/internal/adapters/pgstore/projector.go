package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/telemetry"
)

// Projector runs asynchronous projections as watermill-sql subscribers of
// the outbox (one consumer group each) and keeps inline ones, which the
// Store applies inside append transactions, rebuildable.
type Projector struct {
	store *Store
	waker *Waker
	log   *slog.Logger
	async map[string]projection.Projection
	all   map[string]projection.Projection
	// IdlePoll is how often an idle subscriber polls when no notification
	// arrives (a safety net; notifications do the real work).
	idlePoll time.Duration
	// batch bounds one catch-up transaction.
	batch int

	mu       sync.Mutex
	backoffs map[string]*Backoff
	running  bool
	// catchUps counts catch-up transactions (tests).
	catchUps atomic.Int64
}

// ProjectorOption configures a Projector.
type ProjectorOption func(*Projector)

// WithIdlePoll sets the fallback poll interval (default 1 s).
func WithIdlePoll(d time.Duration) ProjectorOption { return func(p *Projector) { p.idlePoll = d } }

// NewProjector returns a projector for the store's inline projections and
// the given asynchronous ones. Each asynchronous projection uses two pool
// connections while it works (the subscriber's and its own transaction):
// size the pool with ConnsNeeded.
func NewProjector(store *Store, waker *Waker, log *slog.Logger, async []projection.Projection, opts ...ProjectorOption) (*Projector, error) {
	p := &Projector{
		store: store, waker: waker, log: log,
		async: map[string]projection.Projection{}, all: map[string]projection.Projection{},
		idlePoll: time.Second, batch: 500, backoffs: map[string]*Backoff{},
	}
	for _, o := range opts {
		o(p)
	}
	add := func(pr projection.Projection) error {
		if err := projection.CheckName(pr.Name()); err != nil {
			return err
		}
		if _, dup := p.all[pr.Name()]; dup {
			return fmt.Errorf("projection %q registered twice", pr.Name())
		}
		p.all[pr.Name()] = pr
		return nil
	}
	for _, pr := range store.inline {
		if err := add(pr); err != nil {
			return nil, err
		}
	}
	var listened []string
	scoped := true
	for _, pr := range async {
		if err := add(pr); err != nil {
			return nil, err
		}
		p.async[pr.Name()] = pr
		scope := projection.Scope(pr)
		if scope == nil {
			scoped = false
		}
		for _, t := range scope {
			if !slices.Contains(listened, t) {
				listened = append(listened, t)
			}
		}
	}
	if scoped {
		if listened == nil {
			listened = []string{}
		}
		store.listened.Store(&listened)
	}
	return p, nil
}

// Setup creates the state row, table and view of every projection that
// does not have them yet, and builds a new projection from the log when
// events already exist. Safe to call from several replicas at once.
func (p *Projector) Setup(ctx context.Context) error {
	for name := range p.all {
		_, inline := p.async[name]
		inline = !inline
		var created bool
		err := pgx.BeginFunc(ctx, p.store.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('projection:' || $1, 0))", name); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, "INSERT INTO projections (name, inline) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, inline)
			if err != nil {
				return err
			}
			created = tag.RowsAffected() == 1
			if !created {
				return nil
			}
			if err := createGeneration(ctx, tx, name, 1); err != nil {
				return err
			}
			return swapView(ctx, tx, name, 1)
		})
		if err != nil {
			return fmt.Errorf("set up projection %s: %w", name, err)
		}
		if created {
			h, err := head(ctx, p.store.pool)
			if err != nil {
				return err
			}
			if !h.IsZero() {
				p.log.InfoContext(ctx, "building new projection from the log", "projection", name)
				if err := p.Rebuild(ctx, name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func tableName(name string, gen int) string {
	return pgx.Identifier{"rm_" + name + "_g" + strconv.Itoa(gen)}.Sanitize()
}

func viewName(name string) string { return pgx.Identifier{"rm_" + name}.Sanitize() }

func createGeneration(ctx context.Context, tx pgx.Tx, name string, gen int) error {
	t := tableName(name, gen)
	_, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+t+`;
		CREATE TABLE `+t+` (key text PRIMARY KEY, owner text, doc jsonb NOT NULL, due timestamptz);
		CREATE INDEX ON `+t+` (owner, key) WHERE owner IS NOT NULL;
		CREATE INDEX ON `+t+` (due, key) WHERE due IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("create %s: %w", t, err)
	}
	return nil
}

func swapView(ctx context.Context, tx pgx.Tx, name string, gen int) error {
	_, err := tx.Exec(ctx, `CREATE OR REPLACE VIEW `+viewName(name)+` AS SELECT key, owner, doc, due FROM `+tableName(name, gen))
	if err != nil {
		return fmt.Errorf("swap view of %s: %w", name, err)
	}
	return nil
}

// Run subscribes every asynchronous projection to the outbox and handles
// deliveries until ctx is done.
func (p *Projector) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := watermill.NewSlogLogger(p.log)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		return fmt.Errorf("projector: router: %w", err)
	}
	for name, pr := range p.async {
		b := p.waker.NewBackoff(p.idlePoll, projection.Scope(pr), ctx.Done())
		p.mu.Lock()
		p.backoffs[name] = b
		p.mu.Unlock()
		sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(asyncCommitConn{p.store.pool}), wsql.SubscriberConfig{
			ConsumerGroup:  "projection_" + name,
			SchemaAdapter:  outboxSchema,
			OffsetsAdapter: outboxOffsets,
			BackoffManager: b,
			PollInterval:   p.idlePoll,
			// A failing projection is retried once a second: it stalls
			// (and its lag grows) rather than skip an event or flood logs.
			ResendInterval: time.Second,
		}, logger)
		if err != nil {
			return fmt.Errorf("projector: subscriber %s: %w", name, err)
		}
		router.AddConsumerHandler("projection_"+name, OutboxTopic, sub, p.handler(ctx, pr))
	}
	go func() {
		<-router.Running()
		p.mu.Lock()
		p.running = true
		p.mu.Unlock()
	}()
	err = router.Run(ctx)
	p.mu.Lock()
	p.running = false
	p.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("projector: %w", err)
	}
	return nil
}

// Healthy reports whether every subscriber has polled the outbox
// successfully within a few idle intervals.
func (p *Projector) Healthy() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.async) == 0 {
		return nil
	}
	if !p.running {
		return errors.New("outbox subscribers are not running")
	}
	limit := max(5*time.Second, 3*p.idlePoll)
	for name, b := range p.backoffs {
		if time.Since(b.LastOK()) > limit {
			return fmt.Errorf("projection %s has not polled the outbox for %s", name, limit)
		}
	}
	return nil
}

// handler reacts to one delivered outbox message. The message says the log
// has moved; the handler applies the log itself from the projection's
// position, in batches, each in one transaction together with the new
// position. So delivery is at-least-once (a message is acked only after
// its event is applied), redelivery is a no-op (the position is already
// past it), order is the log's whatever the delivery order, and a burst of
// events costs one transaction per batch instead of one per event.
//
// A projection scoped to some stream types (projection.StreamScoped) is
// not caught up for a message of another stream type: the hot path's
// session events would otherwise cost the devices projection a transaction
// each. Its position still follows the log: a catch-up runs at least once
// per skipFor while such messages arrive, and skipFor after the last of
// them. Its lag counts only its own stream types (Status).
func (p *Projector) handler(ctx context.Context, pr projection.Projection) message.NoPublishHandlerFunc {
	var applied eventstore.Position // the router calls one handler at a time
	var mu sync.Mutex               // guards the trailing catch-up's state
	var caughtUp time.Time
	var trailing bool
	trail := func() {
		var last eventstore.Position
		for i := 0; ctx.Err() == nil; i++ {
			to, err := p.catchUp(ctx, pr)
			if err != nil {
				if ctx.Err() == nil {
					p.log.WarnContext(ctx, "projection catch-up", "projection", pr.Name(), "err", err)
				}
				break
			}
			p.catchUps.Add(1)
			if i > 0 && !last.Less(to) {
				break // nothing more to read
			}
			last = to
		}
		mu.Lock()
		caughtUp, trailing = time.Now(), false
		mu.Unlock()
	}
	return func(msg *message.Message) error {
		if st := msg.Metadata.Get(MetaStreamType); st != "" && !projection.InScope(pr, st) {
			mu.Lock()
			recent := time.Since(caughtUp) < skipFor
			if recent && !trailing {
				trailing = true
				time.AfterFunc(skipFor, trail)
			}
			mu.Unlock()
			if recent {
				return nil
			}
		}
		mu.Lock()
		caughtUp = time.Now()
		mu.Unlock()
		// The handling is a span in the trace of the request that appended
		// the message's event (its traceparent travelled in the message's
		// metadata through the outbox), linked to it as a consumer.
		remote := trace.SpanContextFromContext(telemetry.Propagator.Extract(context.Background(), propagation.MapCarrier(msg.Metadata)))
		hctx, span := tracer.Start(trace.ContextWithRemoteSpanContext(msg.Context(), remote), "projection "+pr.Name(),
			trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(trace.Link{SpanContext: remote}),
			trace.WithAttributes(attribute.String("strongroom.projection", pr.Name()),
				attribute.String("strongroom.event_type", msg.Metadata.Get(MetaEventType))))
		defer span.End()
		// The message's event's position when the message carries it;
		// otherwise everything up to the end of the message's transaction.
		target, exact := eventstore.Position{Tx: math.MaxUint64, Seq: math.MaxInt64}, false
		if pos, err := eventstore.ParsePosition(msg.Metadata.Get(MetaPosition)); err == nil {
			target, exact = pos, true
		} else if tx, err := strconv.ParseUint(msg.Metadata.Get(MetaTx), 10, 64); err == nil {
			target = eventstore.Position{Tx: tx, Seq: math.MaxInt64}
		}
		for applied.Less(target) {
			to, err := p.catchUp(hctx, pr)
			if err != nil {
				return err
			}
			p.catchUps.Add(1)
			if !applied.Less(to) {
				if exact {
					return fmt.Errorf("projection %s: event %s delivered but not in the log", pr.Name(), target)
				}
				// The log has nothing more that is final, and the message's
				// transaction is final (its message was delivered): every
				// event it announced is applied.
				return nil
			}
			applied = to
		}
		return nil
	}
}

// skipFor is how long a scoped projection may leave events of other
// stream types unread (see handler).
const skipFor = time.Second

// catchUp applies up to one batch of final events after the projection's
// position and returns the new position.
func (p *Projector) catchUp(ctx context.Context, pr projection.Projection) (eventstore.Position, error) {
	var to eventstore.Position
	err := pgx.BeginTxFunc(ctx, p.store.pool, asyncCommit(pgx.TxOptions{}), func(tx pgx.Tx) error {
		gen, pos, err := lockProjection(ctx, tx, pr.Name())
		if err != nil {
			return err
		}
		to = pos
		evs, err := readAll(ctx, tx, pos, p.batch, true)
		if err != nil || len(evs) == 0 {
			return err
		}
		if err := applyEvents(ctx, tx, pr, gen, evs); err != nil {
			return err
		}
		to = evs[len(evs)-1].Position
		return setPosition(ctx, tx, pr.Name(), to)
	})
	return to, err
}

func lockProjection(ctx context.Context, tx pgx.Tx, name string) (int, eventstore.Position, error) {
	var gen int
	var txText string
	var pos eventstore.Position
	err := tx.QueryRow(ctx, "SELECT generation, pos_tx::text, pos_seq FROM projections WHERE name = $1 FOR UPDATE", name).
		Scan(&gen, &txText, &pos.Seq)
	if err != nil {
		return 0, pos, fmt.Errorf("lock projection %s: %w", name, err)
	}
	if pos.Tx, err = strconv.ParseUint(txText, 10, 64); err != nil {
		return 0, pos, fmt.Errorf("projection %s: position %q: %w", name, txText, err)
	}
	return gen, pos, nil
}

func setPosition(ctx context.Context, tx pgx.Tx, name string, pos eventstore.Position) error {
	_, err := tx.Exec(ctx, `UPDATE projections SET pos_tx = $2::text::xid8, pos_seq = $3, applied_at = now(), updated_at = now()
		WHERE name = $1`, name, strconv.FormatUint(pos.Tx, 10), pos.Seq)
	if err != nil {
		return fmt.Errorf("projection %s: store position: %w", name, err)
	}
	return nil
}

// docWork is one projection's share of a batch of events: the documents
// it touches in one generation, read, folded and written back.
type docWork struct {
	pr      projection.Projection
	table   string // a generation's table, or the view of the current one
	keys    []string
	docs    map[string]*projection.Doc
	existed map[string]bool
	// perStream: the projection is projection.PerStream; known: documents
	// the store has without reading them (inline appends only).
	perStream bool
	known     map[string]bool
}

func newDocWork(pr projection.Projection, evs []eventstore.Event) *docWork {
	w := &docWork{pr: pr, docs: map[string]*projection.Doc{}, existed: map[string]bool{}, known: map[string]bool{}}
	seen := map[string]bool{}
	for _, ev := range evs {
		if key, ok := pr.Key(ev); ok && !seen[key] {
			seen[key] = true
			w.keys = append(w.keys, key)
		}
	}
	return w
}

// docColumns are a document's columns, in scanDoc's order.
const docColumns = "key, coalesce(owner, ''), doc, due"

func scanDoc(row pgx.Row) (projection.Doc, error) {
	var d projection.Doc
	var data []byte
	var due *time.Time
	if err := row.Scan(&d.Key, &d.Owner, &data, &due); err != nil {
		return d, err
	}
	d.Data = data
	if due != nil {
		d.Due = due.UTC()
	}
	return d, nil
}

// unknown returns the keys of the documents that must be read.
func (w *docWork) unknown() []string {
	if len(w.known) == 0 {
		return w.keys
	}
	var out []string
	for _, k := range w.keys {
		if !w.known[k] {
			out = append(out, k)
		}
	}
	return out
}

// queueRead reads every document the work touches.
func (w *docWork) queueRead(b *pgx.Batch) { w.queueReadKeys(b, w.keys) }

// queueReadKeys reads the documents of keys.
func (w *docWork) queueReadKeys(b *pgx.Batch, keys []string) {
	b.Queue("SELECT "+docColumns+" FROM "+w.table+" WHERE key = ANY($1)", keys).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				d, err := scanDoc(rows)
				if err != nil {
					return fmt.Errorf("projection %s: read documents: %w", w.pr.Name(), err)
				}
				w.docs[d.Key] = &d
				w.existed[d.Key] = true
			}
			return rows.Err()
		})
}

// fold applies the events in memory.
func (w *docWork) fold(evs []eventstore.Event) error {
	for _, ev := range evs {
		key, ok := w.pr.Key(ev)
		if !ok {
			continue
		}
		next, err := w.pr.Apply(w.docs[key], ev)
		if err != nil {
			return err
		}
		if next != nil && next.Key != key {
			return fmt.Errorf("projection %s: apply moved document %q to %q", w.pr.Name(), key, next.Key)
		}
		w.docs[key] = next
	}
	return nil
}

// queueWrites writes the folded documents back.
func (w *docWork) queueWrites(b *pgx.Batch) {
	t := w.table
	for _, key := range w.keys {
		d := w.docs[key]
		switch {
		case d == nil && w.existed[key]:
			b.Queue("DELETE FROM "+t+" WHERE key = $1", key)
		case d != nil:
			var due *time.Time
			if !d.Due.IsZero() {
				due = &d.Due
			}
			b.Queue("INSERT INTO "+t+` (key, owner, doc, due) VALUES ($1, nullif($2, ''), $3, $4)
				ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, doc = excluded.doc, due = excluded.due`,
				key, d.Owner, string(d.Data), due)
		}
	}
}

// applyEvents folds evs into the documents they change in generation gen:
// one query reads every document involved, the folds run in memory, and one
// pipelined batch writes the results.
func applyEvents(ctx context.Context, tx pgx.Tx, pr projection.Projection, gen int, evs []eventstore.Event) error {
	w := newDocWork(pr, evs)
	if len(w.keys) == 0 {
		return nil
	}
	w.table = tableName(pr.Name(), gen)
	read := &pgx.Batch{}
	w.queueRead(read)
	if err := tx.SendBatch(ctx, read).Close(); err != nil {
		return fmt.Errorf("projection %s: read documents: %w", pr.Name(), err)
	}
	if err := w.fold(evs); err != nil {
		return err
	}
	write := &pgx.Batch{}
	w.queueWrites(write)
	if err := tx.SendBatch(ctx, write).Close(); err != nil {
		return fmt.Errorf("projection %s: write documents: %w", pr.Name(), err)
	}
	return nil
}

// asyncCommit makes a transaction of the asynchronous projections commit
// without waiting for its WAL to be flushed (synchronous_commit off, for
// that transaction only), set in the BEGIN's own round trip. Under load
// they commit tens of times a second, and each flush is a write and an
// fsync that PostgreSQL does on top of the appends'. Nothing they write is
// a decision or the only copy of anything, so a crash that loses the last
// of them loses nothing: such a transaction is lost whole (and any later
// commit that was flushed flushed it too, WAL being replayed in order). A
// projection's documents then lose their last batch together with its
// position, and it applies those events again from the log; a lost
// subscriber offset redelivers messages whose events the projection has
// applied already, which is a no-op (see handler). Appends, the log and
// inline read models keep synchronous commit.
func asyncCommit(o pgx.TxOptions) pgx.TxOptions {
	var b strings.Builder
	b.WriteString("BEGIN")
	if o.IsoLevel != "" {
		b.WriteString(" ISOLATION LEVEL " + string(o.IsoLevel))
	}
	if o.AccessMode != "" {
		b.WriteString(" " + string(o.AccessMode))
	}
	if o.DeferrableMode != "" {
		b.WriteString(" " + string(o.DeferrableMode))
	}
	b.WriteString("; SET LOCAL synchronous_commit = off")
	o.BeginQuery = b.String()
	return o
}

// asyncCommitConn gives watermill's subscribers (their polls and acks)
// asynchronous commit, see asyncCommit.
type asyncCommitConn struct{ *pgxpool.Pool }

func (c asyncCommitConn) BeginTx(ctx context.Context, o pgx.TxOptions) (pgx.Tx, error) {
	return c.Pool.BeginTx(ctx, asyncCommit(o))
}

// ConnsNeeded is how many pool connections n asynchronous projections can
// hold at once. A pool smaller than this plus the request load could leave
// every subscriber holding a connection while waiting for a second one.
func ConnsNeeded(n int) int32 { return int32(2 * n) }
