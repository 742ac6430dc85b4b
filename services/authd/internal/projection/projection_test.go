package projection

import (
	"encoding/json"
	"testing"

	"strongroom.dev/services/authd/internal/eventstore"
)

type counter struct {
	N       int   `json:"n"`
	Version int64 `json:"version"`
}

// counting counts a stream's events in a per-stream document; its fold
// changes the state it is given in place, the worst a fold may do.
func counting() Typed[counter] {
	return Typed[counter]{
		ProjectionName: "counting",
		KeyOf:          func(ev eventstore.Event) (string, bool) { return ev.StreamID, true },
		VersionOf:      func(c *counter) int64 { return c.Version },
		Fold: func(cur *counter, ev eventstore.Event) (*counter, string, error) {
			if cur == nil {
				cur = &counter{}
			}
			cur.N++
			cur.Version = ev.Version
			return cur, "", nil
		},
	}
}

// TestDocVersionThenApply: the decoding DocVersion keeps for Apply gives
// the same documents as decoding again, is used once, and is not used for
// a document whose Data changed in between.
func TestDocVersionThenApply(t *testing.T) {
	p := counting()
	ev := eventstore.Event{StreamID: "s", Version: 4}

	plain, err := p.Apply(&Doc{Key: "s", Data: json.RawMessage(`{"n":3,"version":3}`)}, ev)
	if err != nil {
		t.Fatal(err)
	}

	d := &Doc{Key: "s", Data: json.RawMessage(`{"n":3,"version":3}`)}
	if v, err := p.DocVersion(d); err != nil || v != 3 {
		t.Fatalf("DocVersion = %d, %v", v, err)
	}
	cached, err := p.Apply(d, ev)
	if err != nil {
		t.Fatal(err)
	}
	if string(cached.Data) != string(plain.Data) || string(cached.Data) != `{"n":4,"version":4}` {
		t.Fatalf("Apply after DocVersion = %s, without = %s", cached.Data, plain.Data)
	}
	// The fold changed the state it was handed: a second Apply of the same
	// document must decode Data again, not reuse it.
	again, err := p.Apply(d, ev)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Data) != `{"n":4,"version":4}` {
		t.Fatalf("second Apply = %s", again.Data)
	}

	replaced := &Doc{Key: "s", Data: json.RawMessage(`{"n":3,"version":3}`)}
	if _, err := p.DocVersion(replaced); err != nil {
		t.Fatal(err)
	}
	replaced.Data = json.RawMessage(`{"n":10,"version":3}`)
	got, err := p.Apply(replaced, ev)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != `{"n":11,"version":4}` {
		t.Fatalf("Apply after Data was replaced = %s", got.Data)
	}

	if _, err := p.DocVersion(&Doc{Key: "s", Data: json.RawMessage(`[`)}); err == nil {
		t.Fatal("DocVersion of a broken document")
	}
}
