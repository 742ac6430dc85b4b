package pgstore

import (
	"context"
	"encoding/json"
	"fmt"

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
	MetaEventType = "event_type"
	MetaStreamID  = "stream_id"
	MetaPosition  = "position"
)

var (
	outboxSchema  = wsql.DefaultPostgreSQLSchema{}
	outboxOffsets = wsql.DefaultPostgreSQLOffsetsAdapter{}
)

// publish writes the events to the outbox inside tx (watermill-sql's
// publisher on the caller's transaction): they become deliverable exactly
// when the append commits, and never if it rolls back.
func publish(ctx context.Context, tx pgx.Tx, evs []eventstore.Event) error {
	pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: outboxSchema}, watermill.NopLogger{})
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
	msg.Metadata.Set(MetaPosition, ev.Position.String())
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
	if ev.Position.IsZero() || ev.StreamID == "" || ev.Type == "" {
		return ev, fmt.Errorf("outbox: message %s is not an event", msg.UUID)
	}
	return ev, nil
}
