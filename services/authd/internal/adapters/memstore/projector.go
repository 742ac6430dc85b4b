package memstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
)

type model struct {
	p          projection.Projection
	inline     bool
	generation int
	pos        eventstore.Position
	docs       map[string]projection.Doc
}

// models holds every read model; lock order is Store.mu before models.mu.
type models struct {
	mu sync.RWMutex
	m  map[string]*model
}

func newModels() *models { return &models{m: map[string]*model{}} }

func (ms *models) add(p projection.Projection, inline bool) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.m[p.Name()] = &model{p: p, inline: inline, generation: 1, docs: map[string]projection.Doc{}}
}

// applyInline folds events into the inline read models, all or nothing.
func (ms *models) applyInline(evs []eventstore.Event) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	staged := map[*model]map[string]*projection.Doc{}
	for _, m := range ms.m {
		if !m.inline {
			continue
		}
		changes := map[string]*projection.Doc{}
		for _, ev := range evs {
			if err := fold(m.p, m.docs, changes, ev); err != nil {
				return err
			}
		}
		staged[m] = changes
	}
	for m, changes := range staged {
		commit(m.docs, changes)
	}
	return nil
}

// fold applies ev on top of docs+changes, recording the result in changes.
func fold(p projection.Projection, docs map[string]projection.Doc, changes map[string]*projection.Doc, ev eventstore.Event) error {
	key, ok := p.Key(ev)
	if !ok {
		return nil
	}
	var cur *projection.Doc
	if d, staged := changes[key]; staged {
		cur = d
	} else if d, ok := docs[key]; ok {
		cur = &d
	}
	next, err := p.Apply(cur, ev)
	if err != nil {
		return err
	}
	if next != nil && next.Key != key {
		return fmt.Errorf("projection %s: apply moved document %q to %q", p.Name(), key, next.Key)
	}
	changes[key] = next
	return nil
}

func commit(docs map[string]projection.Doc, changes map[string]*projection.Doc) {
	for k, d := range changes {
		if d == nil {
			delete(docs, k)
		} else {
			docs[k] = *d
		}
	}
}

// Projector runs asynchronous projections over the in-memory log. Each
// wake-up message from the GoChannel makes it read the log from the
// projection's position, so delivery order never matters.
type Projector struct {
	store *Store
	log   *slog.Logger
	async []*model
	wake  chan struct{}

	mu      sync.Mutex
	running bool
}

// NewProjector registers async projections on the store.
func NewProjector(store *Store, log *slog.Logger, async []projection.Projection) (*Projector, error) {
	p := &Projector{store: store, log: log, wake: make(chan struct{}, 1)}
	for _, pr := range async {
		if err := projection.CheckName(pr.Name()); err != nil {
			return nil, err
		}
		store.models.mu.RLock()
		_, dup := store.models.m[pr.Name()]
		store.models.mu.RUnlock()
		if dup {
			return nil, fmt.Errorf("projection %q registered twice", pr.Name())
		}
		store.models.add(pr, false)
		store.models.mu.RLock()
		p.async = append(p.async, store.models.m[pr.Name()])
		store.models.mu.RUnlock()
	}
	return p, nil
}

// Run delivers events until ctx is done.
func (p *Projector) Run(ctx context.Context) error {
	msgs, err := p.store.pubsub.Subscribe(ctx, Topic)
	if err != nil {
		return fmt.Errorf("projector: subscribe: %w", err)
	}
	p.mu.Lock()
	p.running = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
	}()
	go func() {
		for msg := range msgs {
			msg.Ack()
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-retry.C:
		}
		if err := p.catchUp(ctx); err != nil {
			// A fold that fails stalls its projection (lag shows it)
			// rather than skipping an event; try again shortly.
			p.log.ErrorContext(ctx, "projection failed", "err", err)
			retry.Reset(time.Second)
		}
	}
}

// Healthy reports whether the projector is running.
func (p *Projector) Healthy() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running && len(p.async) > 0 {
		return errors.New("projector is not running")
	}
	return nil
}

func (p *Projector) catchUp(ctx context.Context) error {
	var errs []error
	for _, m := range p.async {
		for {
			p.store.models.mu.RLock()
			pos := m.pos
			p.store.models.mu.RUnlock()
			evs, err := p.store.ReadAll(ctx, pos, 1000)
			if err != nil || len(evs) == 0 {
				errs = append(errs, err)
				break
			}
			if err := p.applyBatch(m, pos, evs); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	return errors.Join(errs...)
}

// applyBatch folds evs into m if m is still at pos (a rebuild may have
// moved it meanwhile), position and documents together.
func (p *Projector) applyBatch(m *model, pos eventstore.Position, evs []eventstore.Event) error {
	ms := p.store.models
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if m.pos != pos {
		return nil
	}
	changes := map[string]*projection.Doc{}
	for _, ev := range evs {
		if err := fold(m.p, m.docs, changes, ev); err != nil {
			return err
		}
	}
	commit(m.docs, changes)
	m.pos = evs[len(evs)-1].Position
	return nil
}

// Rebuild folds the whole log into a fresh document set and swaps it in.
func (p *Projector) Rebuild(ctx context.Context, name string) error {
	// Hold off appends for the duration: in memory this takes
	// milliseconds, and it makes the swap trivially exact.
	p.store.mu.RLock()
	defer p.store.mu.RUnlock()
	ms := p.store.models
	ms.mu.RLock()
	m, ok := ms.m[name]
	ms.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%w: %q", projection.ErrUnknown, name)
	}
	fresh := map[string]projection.Doc{}
	changes := map[string]*projection.Doc{}
	for _, ev := range p.store.log {
		if err := fold(m.p, fresh, changes, ev); err != nil {
			return fmt.Errorf("rebuild %s: %w", name, err)
		}
	}
	commit(fresh, changes)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	m.docs = fresh
	m.generation++
	if len(p.store.log) > 0 {
		m.pos = p.store.log[len(p.store.log)-1].Position
	}
	return nil
}

func (p *Projector) model(name string) (*model, error) {
	m, ok := p.store.models.m[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", projection.ErrUnknown, name)
	}
	return m, nil
}

// Get implements projection.Reader.
func (p *Projector) Get(_ context.Context, name, key string) (projection.Doc, bool, error) {
	p.store.models.mu.RLock()
	defer p.store.models.mu.RUnlock()
	m, err := p.model(name)
	if err != nil {
		return projection.Doc{}, false, err
	}
	d, ok := m.docs[key]
	return cloneDoc(d), ok, nil
}

// ListByOwner implements projection.Reader.
func (p *Projector) ListByOwner(_ context.Context, name, owner string) ([]projection.Doc, error) {
	return p.list(name, func(d projection.Doc) bool { return d.Owner == owner })
}

// All implements projection.Reader.
func (p *Projector) All(_ context.Context, name string) ([]projection.Doc, error) {
	return p.list(name, func(projection.Doc) bool { return true })
}

func (p *Projector) list(name string, keep func(projection.Doc) bool) ([]projection.Doc, error) {
	p.store.models.mu.RLock()
	defer p.store.models.mu.RUnlock()
	m, err := p.model(name)
	if err != nil {
		return nil, err
	}
	var out []projection.Doc
	for _, d := range m.docs {
		if keep(d) {
			out = append(out, cloneDoc(d))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Due implements projection.Reader.
func (p *Projector) Due(_ context.Context, name string, t time.Time, limit int) ([]projection.Doc, error) {
	docs, err := p.list(name, func(d projection.Doc) bool { return !d.Due.IsZero() && !d.Due.After(t) })
	if err != nil {
		return nil, err
	}
	sort.SliceStable(docs, func(i, j int) bool { return docs[i].Due.Before(docs[j].Due) })
	return docs[:min(len(docs), eventstore.ClampLimit(limit))], nil
}

func cloneDoc(d projection.Doc) projection.Doc {
	d.Data = append([]byte(nil), d.Data...)
	return d
}

// Status implements projection.Runner.
func (p *Projector) Status(ctx context.Context) ([]projection.Status, error) {
	head, err := p.store.Head(ctx)
	if err != nil {
		return nil, err
	}
	p.store.mu.RLock()
	defer p.store.mu.RUnlock()
	p.store.models.mu.RLock()
	defer p.store.models.mu.RUnlock()
	now := time.Now()
	var out []projection.Status
	for name, m := range p.store.models.m {
		st := projection.Status{Name: name, Inline: m.inline, Generation: m.generation, Position: m.pos, Head: head}
		if m.inline {
			st.Position = head
		} else if pending := p.store.readAfter(m.pos, len(p.store.log), ""); len(pending) > 0 {
			st.LagEvents = int64(len(pending))
			st.LagSeconds = projection.LagAt(now, pending[0].OccurredAt)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

var _ projection.Runner = (*Projector)(nil)
