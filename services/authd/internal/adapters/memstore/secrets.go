package memstore

import (
	"context"

	"strongroom.dev/services/authd/internal/eventstore"
)

// AppendWithSecret appends events and stores value under key (nil deletes
// it) under the store's lock, so both happen or neither.
func (s *Store) AppendWithSecret(ctx context.Context, key string, value []byte, appends ...eventstore.Append) ([]eventstore.Event, error) {
	s.secretMu.Lock()
	defer s.secretMu.Unlock()
	out, err := s.Append(ctx, appends...)
	if err != nil {
		return nil, err
	}
	if s.secrets == nil {
		s.secrets = map[string][]byte{}
	}
	if value == nil {
		delete(s.secrets, key)
	} else {
		s.secrets[key] = append([]byte(nil), value...)
	}
	return out, nil
}

// Secret returns the value stored under key.
func (s *Store) Secret(_ context.Context, key string) ([]byte, bool, error) {
	s.secretMu.Lock()
	defer s.secretMu.Unlock()
	v, ok := s.secrets[key]
	return append([]byte(nil), v...), ok, nil
}
