package keyrotation

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
)

// world carries out steps the way the controller does, one write each,
// with real keys in a real keys.json, and checks the invariants after
// every write and over every stretch of time between writes:
//
//	I1 once the set exists, some key is active at every instant;
//	I2 a key becomes active only after it has been in the Secret for
//	   publishAhead (except the first key, and keys made active at once by
//	   a revoke or because none was active). When the policy changes, in
//	   the terms of keys.json: readers cache it for less than the
//	   publish_ahead it states, so a key becomes active only once every
//	   cached copy without it has expired;
//	I3 a key stays in the Secret, and within its window, for retireAfter
//	   after the last instant it was active (except a revoked key), and
//	   at least for the protected_lifetime keys.json states;
//	I4 not_before never changes and not_after only grows, except in a
//	   revoke;
//	I5 keys.json always parses.
type world struct {
	t    testing.TB
	spec Spec
	now  time.Time
	s    State
	priv map[string]keyset.Secret // kid → private key

	firstSeen map[string]time.Time // kid → first written
	horizon   time.Time            // until when a cached keys.json of an earlier version may be used
	notBefore map[string]time.Time // kid → when it may become active (I2)
	changing  bool                 // the policy changes: I2 and I3 in the terms of keys.json
	exempt    map[string]bool      // kid → may become active without publishAhead
	revoked   map[string]bool      // kid → revoked (may leave at once)
	stopped   map[string]time.Time // kid → when it stopped being active
	active    string               // the active kid, as time went by
	started   bool                 // the set exists

	writes, rotations, revokes, emergencies int
	history                                 []string // the latest steps, for failures
}

// fatalf fails with the latest steps.
func (w *world) fatalf(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf(format+"\nlatest steps:\n%s", append(args, strings.Join(w.history, "\n"))...)
}

func (w *world) log(format string, args ...any) {
	w.history = append(w.history, fmt.Sprintf(format, args...))
	if len(w.history) > 12 {
		w.history = w.history[1:]
	}
}

func newWorld(t testing.TB, sp Spec, start time.Time) *world {
	return &world{
		t: t, spec: sp, now: start, priv: map[string]keyset.Secret{},
		firstSeen: map[string]time.Time{}, notBefore: map[string]time.Time{}, exempt: map[string]bool{}, revoked: map[string]bool{}, stopped: map[string]time.Time{},
	}
}

func (w *world) at() string { return w.now.UTC().Format(time.RFC3339Nano) }

// apply carries out one step at w.now and checks the invariants.
func (w *world) apply(st Step) {
	w.t.Helper()
	if st.Action != StepWait {
		w.log("%s %s kid=%s keys=%v A=%s PL=%s (spec P=%s A=%s R=%s PL=%s)", w.at(), st.Action, st.KID, st.Keys, st.PublishAhead, st.ProtectedLifetime,
			w.spec.RotationPeriod, w.spec.PublishAhead, w.spec.RetireAfter, w.spec.ProtectedLifetime)
	}
	switch st.Action {
	case StepWait:
		if !st.At.After(w.now) {
			w.fatalf("%s: wait until %s, not in the future", w.at(), st.At)
		}
		return
	case StepMarkRevoking:
		if k, ok := Active(w.now, w.s.Keys); !ok || k.KID != st.KID {
			w.fatalf("%s: marked %s for revoking, the active key is %s", w.at(), st.KID, k.KID)
		}
		w.s.Revoking = st.KID
		w.writes++
		return
	case StepClearRevoke:
		if w.s.Revoking != "" && slices.ContainsFunc(w.s.Keys, func(k Key) bool { return k.KID == w.s.Revoking }) {
			w.fatalf("%s: revoke cleared while %s is still in the Secret", w.at(), w.s.Revoking)
		}
		w.s.Revoking, w.s.RevokeRequested = "", false
		w.writes++
		return
	case StepCreate:
		if w.s.Exists {
			w.fatalf("%s: create, but the Secret exists", w.at())
		}
	case StepRetire, StepAddSuccessor, StepAddEmergencyKey, StepUpdateParams, StepRevoke:
		if !w.s.Exists {
			w.fatalf("%s: %s before the Secret exists", w.at(), st.Action)
		}
	default:
		w.fatalf("unknown step %+v", st)
	}
	w.writes++
	if w.s.Exists {
		// The version replaced now may be cached by readers for up to the
		// publish_ahead it states.
		w.horizon = later(w.horizon, w.now.Add(w.s.PublishAhead))
	}

	// The write: new keys get real key material, keys.json is marshalled
	// and parsed as authd parses it (I5).
	f := keyset.File{Purpose: w.spec.Purpose, PublishAhead: keyset.Duration(st.PublishAhead), ProtectedLifetime: keyset.Duration(st.ProtectedLifetime)}
	for _, k := range st.Keys {
		if k.KID == "" {
			priv, kid, err := keyset.Generate(k.Algorithm)
			if err != nil {
				w.t.Fatal(err)
			}
			k.KID, w.priv[kid] = kid, priv
			w.firstSeen[kid] = w.now
			w.notBefore[kid] = w.horizon
			if !w.changing {
				w.notBefore[kid] = w.now.Add(w.spec.PublishAhead)
			}
			switch st.Action {
			case StepCreate, StepAddEmergencyKey, StepRevoke:
				w.exempt[kid] = true
			}
			if st.Action == StepAddEmergencyKey {
				w.emergencies++
			}
		}
		f.Keys = append(f.Keys, keyset.Key{KID: k.KID, Algorithm: k.Algorithm, NotBefore: k.NotBefore, NotAfter: k.NotAfter, PrivateKey: w.priv[k.KID]})
	}
	data, err := f.Marshal()
	if err != nil {
		w.fatalf("%s: %s: keys.json does not marshal: %v", w.at(), st.Action, err)
	}
	parsed, err := keyset.Parse(data)
	if err != nil {
		w.fatalf("%s: %s: keys.json does not parse: %v", w.at(), st.Action, err)
	}
	next := State{Exists: true, PublishAhead: time.Duration(parsed.PublishAhead), ProtectedLifetime: time.Duration(parsed.ProtectedLifetime),
		RevokeRequested: w.s.RevokeRequested, Revoking: w.s.Revoking}
	for _, k := range parsed.Keys {
		next.Keys = append(next.Keys, Key{KID: k.KID, Algorithm: k.Algorithm, NotBefore: k.NotBefore, NotAfter: k.NotAfter})
	}

	// I4, and what left.
	for _, old := range w.s.Keys {
		i := slices.IndexFunc(next.Keys, func(k Key) bool { return k.KID == old.KID })
		if i < 0 {
			if st.Action == StepRevoke && old.KID == st.KID {
				w.revoked[old.KID] = true
				w.revokes++
				continue
			}
			if now := w.now; now.Before(old.NotAfter) {
				w.fatalf("%s: %s dropped key %s before its not_after", w.at(), st.Action, old)
			}
			continue
		}
		k := next.Keys[i]
		if st.Action == StepRevoke {
			if k.NotBefore.After(old.NotBefore) || k.NotAfter.Before(old.NotAfter) {
				w.fatalf("%s: a revoke delayed key %s to %s", w.at(), old, k)
			}
			if !k.NotBefore.Equal(old.NotBefore) {
				w.exempt[k.KID] = true // activated at once by the revoke
			}
			continue
		}
		if !k.NotBefore.Equal(old.NotBefore) || k.NotAfter.Before(old.NotAfter) {
			w.fatalf("%s: %s changed key %s to %s", w.at(), st.Action, old, k)
		}
	}
	if st.Action == StepRevoke && !w.revoked[st.KID] {
		w.fatalf("%s: revoke left %s in the Secret", w.at(), st.KID)
	}
	if st.Action == StepAddSuccessor {
		w.rotations++
	}
	w.s = next
	w.started = true
	w.observe(w.now)
}

// observe records which key is active at t on the current keys.json and
// checks I1–I3 there.
func (w *world) observe(t time.Time) {
	w.t.Helper()
	if !w.started {
		return
	}
	at := t.UTC().Format(time.RFC3339Nano)
	k, ok := Active(t, w.s.Keys)
	if !ok {
		w.fatalf("%s: no key is active (I1); keys %v", at, w.s.Keys)
	}
	if k.KID != w.active {
		if w.active != "" {
			w.stopped[w.active] = t
		}
		if nb := w.notBefore[k.KID]; !w.exempt[k.KID] && t.Before(nb) {
			w.fatalf("%s: key %s active, in the Secret only since %s: readers may hold keys.json without it until %s (I2)",
				at, k.KID, w.firstSeen[k.KID].UTC().Format(time.RFC3339Nano), nb.UTC().Format(time.RFC3339Nano))
		}
		if _, again := w.stopped[k.KID]; again {
			w.fatalf("%s: key %s active again after it stopped", at, k.KID)
		}
		w.active = k.KID
	}
	// I3: every key that stopped being active is still published, and
	// will be until retireAfter (and the protected_lifetime keys.json
	// promises) after it stopped.
	keep := w.s.ProtectedLifetime
	if !w.changing {
		keep = max(keep, w.spec.RetireAfter)
	}
	for kid, when := range w.stopped {
		i := slices.IndexFunc(w.s.Keys, func(k Key) bool { return k.KID == kid })
		switch {
		case w.revoked[kid] || !t.Before(when.Add(keep)):
			if i < 0 {
				delete(w.stopped, kid) // gone for good; keeps the map small
				delete(w.revoked, kid)
			}
		case i >= 0 && w.s.Keys[i].NotAfter.Before(when.Add(keep)):
			w.fatalf("%s: key %s stopped being active at %s and is retired at %s (I3)", at, kid, when.UTC().Format(time.RFC3339Nano), w.s.Keys[i].NotAfter)
		case i < 0 && !w.changing:
			// (With a changing policy, a raised protected_lifetime cannot
			// bring back a key already gone, and does not promise to.)
			w.fatalf("%s: key %s stopped being active at %s and is gone already (I3)", at, kid, when.UTC().Format(time.RFC3339Nano))
		}
	}
}

// advance moves the clock to t with keys.json unchanged, checking every
// instant at which the active key can change (a not_before, a not_after).
func (w *world) advance(t time.Time) {
	w.t.Helper()
	if t.Before(w.now) {
		w.fatalf("time goes back: %s to %s", w.now, t)
	}
	var points []time.Time
	for _, k := range w.s.Keys {
		for _, p := range []time.Time{k.NotBefore, k.NotAfter} {
			if p.After(w.now) && !p.After(t) {
				points = append(points, p)
			}
		}
	}
	slices.SortFunc(points, time.Time.Compare)
	for _, p := range points {
		w.observe(p)
	}
	w.now = t
	w.observe(t)
}

// settle runs steps until Decide says wait, and returns that step.
func (w *world) settle() Step {
	w.t.Helper()
	for range 20 {
		st := Decide(w.now, w.spec, w.s)
		w.apply(st)
		if st.Action == StepWait {
			return st
		}
	}
	w.fatalf("%s: no rest after 20 steps: %+v", w.at(), w.s)
	return Step{}
}

// coveredUntil is the not_after of the latest key: an operator stopped
// now and back before then finds a key active that never stopped being
// active before. (Beyond it, an older key kept longer, under a policy
// since changed, may be active again, or none.)
func (w *world) coveredUntil() time.Time {
	return w.s.Keys[latest(w.s.Keys)].NotAfter
}

func (k Key) String() string {
	return fmt.Sprintf("%s [%s, %s)", k.KID, k.NotBefore.UTC().Format(time.RFC3339Nano), k.NotAfter.UTC().Format(time.RFC3339Nano))
}
