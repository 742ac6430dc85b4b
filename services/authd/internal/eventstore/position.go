package eventstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Position is an event's place in the global log. Tx is the committing
// transaction's id (PostgreSQL xid8; a commit counter in memory) and Seq the
// event's sequence number. Readers only ever see events of transactions
// older than every transaction still running, so paging by Position never
// skips an event whose transaction committed late — which ordering by a
// sequence alone would (sequence numbers are taken before commit).
type Position struct {
	Tx  uint64
	Seq int64
}

// Start is the position before the first event.
var Start = Position{}

// Less reports whether p orders before q.
func (p Position) Less(q Position) bool {
	if p.Tx != q.Tx {
		return p.Tx < q.Tx
	}
	return p.Seq < q.Seq
}

// IsZero reports whether p is Start.
func (p Position) IsZero() bool { return p == Start }

// String renders the position as "tx.seq", the form used in cursors.
func (p Position) String() string {
	return strconv.FormatUint(p.Tx, 10) + "." + strconv.FormatInt(p.Seq, 10)
}

// ParsePosition parses the String form. It refuses anything else, so a
// hostile cursor is a clear error, not a surprising page.
func ParsePosition(s string) (Position, error) {
	tx, seq, ok := strings.Cut(s, ".")
	if !ok || len(s) > 41 {
		return Position{}, fmt.Errorf("position %q: want <tx>.<seq>", s)
	}
	t, err := strconv.ParseUint(tx, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("position %q: bad tx: %w", s, err)
	}
	q, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || q < 0 {
		return Position{}, fmt.Errorf("position %q: bad seq", s)
	}
	return Position{Tx: t, Seq: q}, nil
}

// MarshalJSON renders the position as its string form.
func (p Position) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON parses the string form.
func (p *Position) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("position: %w", err)
	}
	q, err := ParsePosition(s)
	if err != nil {
		return err
	}
	*p = q
	return nil
}
