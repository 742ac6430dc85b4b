package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"strongroom.dev/services/authd/internal/eventstore"
)

// OutboxTopic is the watermill topic every appended event is published to.
const OutboxTopic = "events"

// NotifyChannel is the LISTEN/NOTIFY channel an append signals at commit,
// so subscribers poll at once instead of waiting for their next interval.
const NotifyChannel = "strongroom_events"

// Message metadata keys, besides the W3C "traceparent" and "tracestate".
const (
	MetaEventType  = "event_type"
	MetaStreamID   = "stream_id"
	MetaStreamType = "stream_type"
	MetaPosition   = "position"
)

var (
	outboxSchema  = schemaAdapter{}
	outboxOffsets = wsql.DefaultPostgreSQLOffsetsAdapter{}
)

// MetaTx is the message metadata key that carries the id of the
// transaction that appended the message's event.
const MetaTx = "tx"

// schemaAdapter is watermill-sql's PostgreSQL schema, which also tells a
// subscriber the id of the transaction that wrote each message (its
// transaction_id column): the events of that transaction are exactly what
// the message announces, and a projection already past that transaction
// has nothing to do. An append builds its messages before the database
// has assigned the events' positions (see append.go), so the messages
// cannot carry those.
type schemaAdapter struct{ wsql.DefaultPostgreSQLSchema }

func (s schemaAdapter) UnmarshalMessage(params wsql.UnmarshalMessageParams) (wsql.Row, error) {
	r, err := s.DefaultPostgreSQLSchema.UnmarshalMessage(params)
	if err != nil {
		return r, err
	}
	if tx, ok := r.ExtraData["transaction_id"].(wsql.XID8); ok {
		r.Msg.Metadata.Set(MetaTx, strconv.FormatUint(uint64(tx), 10))
	}
	return r, nil
}

// queuePublish queues the outbox insert of evs on b, through watermill-sql's
// publisher: the messages become deliverable exactly when the append
// commits, and never if it rolls back. The statement is watermill's own; it
// only travels in the append's pipeline instead of a round trip of its own.
func queuePublish(ctx context.Context, b *pgx.Batch, evs []eventstore.Event) error {
	pub, err := wsql.NewPublisher(batchExecutor{b}, wsql.PublisherConfig{SchemaAdapter: outboxSchema}, watermill.NopLogger{})
	if err != nil {
		return fmt.Errorf("outbox: publisher: %w", err)
	}
	msgs := make(message.Messages, len(evs))
	for i, ev := range evs {
		if msgs[i], err = EventMessage(ev); err != nil {
			return err
		}
		msgs[i].SetContext(ctx)
	}
	if err := pub.Publish(OutboxTopic, msgs...); err != nil {
		return fmt.Errorf("outbox: publish: %w", err)
	}
	return nil
}

// batchExecutor is a watermill-sql executor that queues statements on a
// pgx batch; their errors surface when the batch is sent, and fail the
// append. The publisher only executes (it never queries).
type batchExecutor struct{ b *pgx.Batch }

func (e batchExecutor) ExecContext(_ context.Context, query string, args ...any) (wsql.Result, error) {
	e.b.Queue(query, args...)
	return queuedResult{}, nil
}

func (e batchExecutor) QueryContext(context.Context, string, ...any) (wsql.Rows, error) {
	return nil, errors.New("outbox: queries cannot be batched")
}

type queuedResult struct{}

func (queuedResult) RowsAffected() (int64, error) {
	return 0, errors.New("outbox: result not known until the batch is sent")
}

// EventMessage turns an event into a watermill message. Personal data stays
// in the log: outbox messages carry none, so the copies that delivery makes
// never need erasing.
func EventMessage(ev eventstore.Event) (*message.Message, error) {
	ev.Personal = nil
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("outbox: encode event %s: %w", ev.EventID, err)
	}
	msg := message.NewMessage(ev.EventID.String(), payload)
	msg.Metadata.Set(MetaEventType, ev.Type)
	msg.Metadata.Set(MetaStreamID, ev.StreamID)
	msg.Metadata.Set(MetaStreamType, ev.StreamType)
	if !ev.Position.IsZero() {
		msg.Metadata.Set(MetaPosition, ev.Position.String())
	}
	if ev.Metadata.TraceParent != "" {
		msg.Metadata.Set("traceparent", ev.Metadata.TraceParent)
	}
	if ev.Metadata.TraceState != "" {
		msg.Metadata.Set("tracestate", ev.Metadata.TraceState)
	}
	return msg, nil
}

// MessageEvent decodes a message made by EventMessage.
func MessageEvent(msg *message.Message) (eventstore.Event, error) {
	var ev eventstore.Event
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return ev, fmt.Errorf("outbox: decode message %s: %w", msg.UUID, err)
	}
	if ev.StreamID == "" || ev.Type == "" {
		return ev, fmt.Errorf("outbox: message %s is not an event", msg.UUID)
	}
	return ev, nil
}

// OutboxBacklog counts the outbox messages some consumer group of the
// projector has not acknowledged yet: those after the least acknowledged
// (transaction, offset). Pruning keeps the table small, so the count is
// cheap; a group that has acknowledged nothing counts every message.
func (p *Projector) OutboxBacklog(ctx context.Context) (int64, error) {
	groups := make([]string, 0, len(p.async))
	for name := range p.async {
		groups = append(groups, "projection_"+name)
	}
	if len(groups) == 0 {
		return 0, nil
	}
	messages := outboxSchema.MessagesTable(OutboxTopic)
	offsets := outboxOffsets.MessagesOffsetsTable(OutboxTopic)
	var n int64
	err := p.store.pool.QueryRow(ctx, `WITH acked AS (
			SELECT count(*) AS n FROM `+offsets+` WHERE consumer_group = ANY($1)
		), floor AS (
			SELECT o.last_processed_transaction_id AS tx, o.offset_acked AS off FROM `+offsets+` o, acked
			WHERE o.consumer_group = ANY($1) AND acked.n = cardinality($1)
			ORDER BY o.last_processed_transaction_id, o.offset_acked LIMIT 1
		)
		SELECT count(*) FROM `+messages+` m
		WHERE NOT EXISTS (SELECT 1 FROM floor)
		   OR (m.transaction_id, m."offset") > (SELECT tx, off FROM floor)`, groups).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("outbox backlog: %w", err)
	}
	return n, nil
}

// pruneBatch bounds one prune transaction.
const pruneBatch = 5000

// PruneOutbox deletes outbox messages that every consumer group of the
// projector has acknowledged and that are older than keep, in batches, and
// returns how many it deleted. The outbox would otherwise grow by a row per
// event forever (on the refresh path, one per refresh). Nothing needs a
// pruned message again: subscribers apply the log itself, and a new
// projection is built from the log, not from messages. A consumer group
// that has acknowledged nothing yet holds everything back. Any replica may
// run it at any time.
func (p *Projector) PruneOutbox(ctx context.Context, keep time.Duration) (int64, error) {
	groups := make([]string, 0, len(p.async))
	for name := range p.async {
		groups = append(groups, "projection_"+name)
	}
	if len(groups) == 0 {
		return 0, nil
	}
	messages := outboxSchema.MessagesTable(OutboxTopic)
	offsets := outboxOffsets.MessagesOffsetsTable(OutboxTopic)
	var total int64
	for {
		// The position every group has passed: the least acknowledged
		// (transaction, offset), the order subscribers read in.
		tag, err := p.store.pool.Exec(ctx, `WITH acked AS (
				SELECT count(*) AS n FROM `+offsets+` WHERE consumer_group = ANY($1)
			), floor AS (
				SELECT o.last_processed_transaction_id AS tx, o.offset_acked AS off FROM `+offsets+` o, acked
				WHERE o.consumer_group = ANY($1) AND acked.n = cardinality($1)
				ORDER BY o.last_processed_transaction_id, o.offset_acked LIMIT 1
			)
			DELETE FROM `+messages+` m USING (
				SELECT w.transaction_id, w."offset" FROM `+messages+` w, floor
				WHERE (w.transaction_id, w."offset") <= (floor.tx, floor.off)
				  AND w.created_at < localtimestamp - make_interval(secs => $2)
				ORDER BY w.transaction_id, w."offset" LIMIT $3
			) d
			WHERE m.transaction_id = d.transaction_id AND m."offset" = d."offset"`,
			groups, keep.Seconds(), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune outbox: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}
