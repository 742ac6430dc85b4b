package keyrotation

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
)

const day = 24 * time.Hour

var start = time.Date(2027, 1, 4, 9, 0, 0, 0, time.UTC)

func tokenSigning() Spec {
	return Spec{Purpose: keyset.PurposeTokenSigning, Algorithm: keyset.ES256,
		RotationPeriod: 30 * day, PublishAhead: day, RetireAfter: day, ProtectedLifetime: time.Hour}
}

// policies are the simulated ones: the defaults, short periods with
// publishAhead close to rotationPeriod, retireAfter longer than
// rotationPeriod (many retiring keys), and the other purposes.
func policies() map[string]Spec {
	sealing := Spec{Purpose: keyset.PurposePayloadSealing, Algorithm: keyset.X25519,
		RotationPeriod: 10 * time.Minute, PublishAhead: 9 * time.Minute, RetireAfter: 10 * time.Minute, ProtectedLifetime: 10 * time.Minute}
	hmac := Spec{Purpose: keyset.PurposeHMACSecret, Algorithm: keyset.HS256,
		RotationPeriod: 2 * time.Hour, PublishAhead: time.Minute, RetireAfter: 26 * time.Hour, ProtectedLifetime: day}
	slow := tokenSigning()
	slow.RotationPeriod, slow.PublishAhead, slow.RetireAfter = 90*day, 89*day, 2*time.Hour
	return map[string]Spec{
		"token-signing defaults (720h, 24h ahead, 24h retire)": tokenSigning(),
		"payload-sealing 10m, 9m ahead, 10m retire":            sealing,
		"hmac-secret 2h, 1m ahead, 26h retire":                 hmac,
		"token-signing 90d, 89d ahead, 2h retire":              slow,
	}
}

// TestLongRun simulates two years (or 1000 rotation periods, if fewer)
// of each policy: the controller wakes when asked, earlier (another
// event), or later (an outage, up to the end of the keys' windows); it
// sometimes stops between two writes and resumes later; revokes come at
// random. The invariants hold after every write and at every instant in
// between (world).
func TestLongRun(t *testing.T) {
	for name, sp := range policies() {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				t.Parallel()
				if err := sp.Validate(); err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(seed, 11))
				w := newWorld(t, sp, start)
				end := start.Add(min(2*365*day, 1000*sp.RotationPeriod))
				// Some random instant before t (never before now).
				before := func(t time.Time) time.Time {
					if !t.After(w.now) {
						return w.now
					}
					return w.now.Add(time.Duration(rng.Int64N(int64(t.Sub(w.now)))))
				}
				for w.now.Before(end) {
					st := Decide(w.now, sp, w.s)
					w.apply(st)
					if st.Action != StepWait {
						if rng.IntN(8) == 0 {
							// Stopped after this write; back later.
							w.advance(before(w.coveredUntil()))
						}
						continue
					}
					if st.NextRotation.IsZero() || st.NextRotation.Before(w.now) {
						t.Fatalf("%s: next rotation %s", w.at(), st.NextRotation)
					}
					switch rng.IntN(6) {
					case 0: // woken early by something else
						w.advance(before(st.At))
					case 1: // an outage
						w.advance(before(w.coveredUntil()))
					default:
						w.advance(st.At)
					}
					if rng.IntN(12) == 0 {
						w.s.RevokeRequested = true
					}
				}
				if want := int(end.Sub(start)/(sp.RotationPeriod+sp.RetireAfter+sp.PublishAhead)) / 2; w.rotations < want {
					t.Fatalf("%d rotations, want at least %d", w.rotations, want)
				}
				if w.emergencies > 0 {
					t.Fatalf("%d emergency keys: outages within the keys' windows must never need one", w.emergencies)
				}
				t.Logf("%d writes, %d rotations, %d revokes", w.writes, w.rotations, w.revokes)
			})
		}
	}
}

// TestOnTime: woken exactly when asked, the defaults rotate every
// rotationPeriod, each key published publishAhead before it is active and
// retired retireAfter after.
func TestOnTime(t *testing.T) {
	sp := tokenSigning()
	w := newWorld(t, sp, start)
	var first Key
	for i := 0; w.rotations < 12; i++ {
		st := w.settle()
		if i == 0 {
			first = w.s.Keys[0]
			if !first.NotBefore.Equal(start) || !first.NotAfter.Equal(start.Add(sp.RotationPeriod+sp.RetireAfter)) {
				t.Fatalf("first key %s", first)
			}
		}
		w.advance(st.At)
	}
	// The n-th key is active from start + n·P, published at its not_before
	// - A, and kept until its successor's not_before + R.
	for _, k := range w.s.Keys {
		n := k.NotBefore.Sub(start) / sp.RotationPeriod
		if k.NotBefore.Sub(start)%sp.RotationPeriod != 0 {
			t.Fatalf("key %s does not start on the rotation grid", k)
		}
		if got := w.firstSeen[k.KID]; n > 0 && !got.Equal(k.NotBefore.Add(-sp.PublishAhead)) {
			t.Fatalf("key %s published at %s", k, got)
		}
	}
	if len(w.s.Keys) > 3 {
		t.Fatalf("%d keys in the Secret at rest: %v", len(w.s.Keys), w.s.Keys)
	}
}

// TestLongOutage: everything expired while the operator was stopped. It
// drops the expired keys, then a new key is active at once (the one case,
// with a revoke, where a key is active without having been published).
func TestLongOutage(t *testing.T) {
	sp := tokenSigning()
	w := newWorld(t, sp, start)
	w.settle()
	w.now = start.Add(5 * sp.RotationPeriod)
	st := Decide(w.now, sp, w.s)
	if st.Action != StepRetire || len(st.Retired) != 1 || len(st.Keys) != 0 {
		t.Fatalf("after the outage: %+v", st)
	}
	w.s.Keys = st.Keys
	st = Decide(w.now, sp, w.s)
	if st.Action != StepAddEmergencyKey || len(st.Keys) != 1 || !st.Keys[0].NotBefore.Equal(w.now) {
		t.Fatalf("with no key: %+v", st)
	}
}

// TestRevoke: the active key leaves in one write and the published
// successor is active from then on; without a successor, a new key is;
// the annotations are cleared; a second revoke works the same.
func TestRevoke(t *testing.T) {
	sp := tokenSigning()
	w := newWorld(t, sp, start)
	w.settle()
	w.advance(start.Add(sp.RotationPeriod - time.Hour)) // the successor is published
	w.settle()
	if len(w.s.Keys) != 2 {
		t.Fatalf("keys %v", w.s.Keys)
	}
	old, succ := w.s.Keys[0], w.s.Keys[1]

	w.s.RevokeRequested = true
	steps := w.steps()
	if fmt.Sprint(steps) != "[MarkRevoking Revoke ClearRevoke]" {
		t.Fatalf("steps %v", steps)
	}
	if len(w.s.Keys) != 1 || w.s.Keys[0].KID != succ.KID || !w.s.Keys[0].NotBefore.Equal(w.now) || w.active != succ.KID {
		t.Fatalf("after the revoke of %s: keys %v, active %s", old.KID, w.s.Keys, w.active)
	}
	// The successor's successor follows the usual plan from now on.
	st := Decide(w.now, sp, w.s)
	if want := w.now.Add(sp.RotationPeriod - sp.PublishAhead); st.Action != StepWait || !st.At.Equal(want) {
		t.Fatalf("after the revoke: %+v, want wait until %s", st, want)
	}

	// Again, with no successor published: a new key.
	w.advance(w.now.Add(time.Hour))
	w.s.RevokeRequested = true
	if steps := w.steps(); fmt.Sprint(steps) != "[MarkRevoking Revoke ClearRevoke]" {
		t.Fatalf("steps %v", steps)
	}
	if len(w.s.Keys) != 1 || w.s.Keys[0].KID == succ.KID || !w.s.Keys[0].NotBefore.Equal(w.now) {
		t.Fatalf("after the second revoke: keys %v", w.s.Keys)
	}
}

// steps settles and returns the actions taken.
func (w *world) steps() []Action {
	var out []Action
	for range 20 {
		st := Decide(w.now, w.spec, w.s)
		w.apply(st)
		if st.Action == StepWait {
			return out
		}
		out = append(out, st.Action)
	}
	w.t.Fatal("no rest")
	return nil
}

func TestSpecValidate(t *testing.T) {
	for name, edit := range map[string]func(*Spec){
		"publishAhead = rotationPeriod":       func(s *Spec) { s.PublishAhead = s.RotationPeriod },
		"retireAfter < protectedLifetime":     func(s *Spec) { s.RetireAfter = s.ProtectedLifetime - 1 },
		"algorithm of another purpose":        func(s *Spec) { s.Algorithm = keyset.HS256 },
		"no algorithm":                        func(s *Spec) { s.Algorithm = "" },
		"zero rotationPeriod":                 func(s *Spec) { s.RotationPeriod = 0 },
		"zero protectedLifetime":              func(s *Spec) { s.ProtectedLifetime = 0 },
		"retireAfter > 100 × rotationPeriod":  func(s *Spec) { s.RotationPeriod, s.PublishAhead, s.RetireAfter = time.Hour, time.Minute, 101*time.Hour },
		"negative publishAhead":               func(s *Spec) { s.PublishAhead = -time.Hour },
		"unknown purpose (and its algorithm)": func(s *Spec) { s.Purpose = "signing" },
	} {
		s := tokenSigning()
		edit(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, sp := range policies() {
		if err := sp.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestDefaultProtectedLifetime(t *testing.T) {
	for purpose, want := range map[string]time.Duration{
		keyset.PurposeTokenSigning: time.Hour, keyset.PurposeHMACSecret: day, keyset.PurposePayloadSealing: 10 * time.Minute, "x": 0,
	} {
		if got := DefaultProtectedLifetime(purpose); got != want {
			t.Errorf("%s: %s, want %s", purpose, got, want)
		}
	}
}

// TestDecide: single decisions, including states the simulations rarely
// reach.
func TestDecide(t *testing.T) {
	now := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	sp := tokenSigning()
	P, A, R := sp.RotationPeriod, sp.PublishAhead, sp.RetireAfter
	key := func(kid string, nb, na time.Time) Key {
		return Key{KID: kid, Algorithm: keyset.ES256, NotBefore: nb, NotAfter: na}
	}
	fresh := func(nb time.Time) Key { return key("", nb, nb.Add(P+R)) }
	// cur has been active for d.
	cur := func(d time.Duration) Key { return key("cur", now.Add(-d), now.Add(-d+P+R)) }
	state := func(keys ...Key) State {
		return State{Exists: true, Keys: keys, PublishAhead: A, ProtectedLifetime: sp.ProtectedLifetime}
	}
	with := func(s State, edit func(*State)) State { edit(&s); return s }
	cases := []struct {
		name string
		sp   func(*Spec)
		s    State
		want Step
	}{
		{"first start: one key, active at once", nil, State{},
			Step{Action: StepCreate, Keys: []Key{fresh(now)}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"up to date: wait until the successor is due", nil, state(cur(day)),
			Step{Action: StepWait, At: now.Add(-day + P - A), NextRotation: now.Add(-day + P)}},
		{"successor due: published A ahead of the planned end, which the current key is kept beyond by R", nil, state(cur(P - A)),
			Step{Action: StepAddSuccessor, Keys: []Key{key("cur", now.Add(-P+A), now.Add(A+R)), fresh(now.Add(A))}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"successor late: published A from now, the current key stays active until then", nil, state(cur(P + 3*time.Hour)),
			Step{Action: StepAddSuccessor, Keys: []Key{key("cur", now.Add(-P-3*time.Hour), now.Add(A+R)), fresh(now.Add(A))}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"successor published: wait for its not_before", nil, state(cur(P-A/2), key("next", now.Add(A/2), now.Add(A/2+P+R))),
			Step{Action: StepWait, At: now.Add(A / 2), NextRotation: now.Add(A / 2)}},
		{"a retiring key: wait for its not_after", nil, state(key("old", now.Add(-P-time.Hour), now.Add(R-time.Hour)), cur(time.Hour)),
			Step{Action: StepWait, At: now.Add(R - time.Hour), NextRotation: now.Add(-time.Hour + P)}},
		{"retire what is past not_after", nil, state(key("old", now.Add(-P-R), now), cur(R)),
			Step{Action: StepRetire, Keys: []Key{cur(R)}, Retired: []Key{key("old", now.Add(-P-R), now)}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"no key active (all expired while stopped): a new key at once", nil, state(),
			Step{Action: StepAddEmergencyKey, Keys: []Key{fresh(now)}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"only a future key (a hand edit): a new key at once, the future key kept", nil, state(key("f", now.Add(time.Hour), now.Add(P))),
			Step{Action: StepAddEmergencyKey, Keys: []Key{key("f", now.Add(time.Hour), now.Add(P)), fresh(now)}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"rotationPeriod raised: the current key keeps its planned end (its not_after)", func(s *Spec) { s.RotationPeriod = 2 * P }, state(cur(P - A)),
			Step{Action: StepAddSuccessor, Keys: []Key{key("cur", now.Add(-P+A), now.Add(A+R)), key("", now.Add(A), now.Add(A+2*P+R))}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"rotationPeriod lowered: the current key's successor comes earlier", func(s *Spec) { s.RotationPeriod = P / 2 }, state(cur(P/2 - A)),
			Step{Action: StepAddSuccessor, Keys: []Key{key("cur", now.Add(-P/2+A), now.Add(-P/2+A+P+R)), key("", now.Add(A), now.Add(A+P/2+R))}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"publishAhead lowered: the next key still published as long ahead as keys.json said, which then says the new value",
			func(s *Spec) { s.PublishAhead = time.Hour }, state(cur(P - A)),
			Step{Action: StepAddSuccessor, Keys: []Key{key("cur", now.Add(-P+A), now.Add(A+R)), key("", now.Add(A), now.Add(A+P+R))}, PublishAhead: time.Hour, ProtectedLifetime: time.Hour}},
		{"algorithm changed: new keys only", func(s *Spec) { s.Purpose, s.Algorithm = keyset.PurposePayloadSealing, keyset.X25519 },
			state(key("cur", now.Add(-P+A), now.Add(A+R))),
			Step{Action: StepAddSuccessor, Keys: []Key{key("cur", now.Add(-P+A), now.Add(A+R)), {Algorithm: keyset.X25519, NotBefore: now.Add(A), NotAfter: now.Add(A + P + R)}}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"protectedLifetime raised: keys.json says so and the retiring key is kept that long", func(s *Spec) { s.ProtectedLifetime, s.RetireAfter = 3*day, 3*day },
			state(key("old", now.Add(-P-day), now.Add(day)), cur(day)),
			Step{Action: StepUpdateParams, Keys: []Key{key("old", now.Add(-P-day), now.Add(2*day)), cur(day)}, PublishAhead: A, ProtectedLifetime: 3 * day}},
		{"protectedLifetime lowered: keys.json says so, nothing else changes", func(s *Spec) { s.ProtectedLifetime = time.Minute },
			state(key("old", now.Add(-P-day), now.Add(day)), cur(day)),
			Step{Action: StepUpdateParams, Keys: []Key{key("old", now.Add(-P-day), now.Add(day)), cur(day)}, PublishAhead: A, ProtectedLifetime: time.Minute}},
		{"revoke asked: mark the active key", nil, with(state(key("old", now.Add(-P-time.Hour), now.Add(R-time.Hour)), cur(time.Hour)), func(s *State) { s.RevokeRequested = true }),
			Step{Action: StepMarkRevoking, KID: "cur"}},
		{"revoke asked before any key: refused", nil, State{RevokeRequested: true},
			Step{Action: StepClearRevoke, Refused: true}},
		{"revoking, a successor published: it is active from now", nil,
			with(state(cur(P-A/2), key("next", now.Add(A/2), now.Add(A/2+P+R))), func(s *State) { s.RevokeRequested, s.Revoking = true, "cur" }),
			Step{Action: StepRevoke, KID: "cur", Keys: []Key{key("next", now, now.Add(A/2+P+R))}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"revoking, no successor: a new key is active from now, not the older retiring one", nil,
			with(state(key("old", now.Add(-P-time.Hour), now.Add(R-time.Hour)), cur(time.Hour)), func(s *State) { s.RevokeRequested, s.Revoking = true, "cur" }),
			Step{Action: StepRevoke, KID: "cur", Keys: []Key{key("old", now.Add(-P-time.Hour), now.Add(R-time.Hour)), fresh(now)}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"revoking a key no longer active (resumed late): it just goes", nil,
			with(state(key("old", now.Add(-P-time.Hour), now.Add(R-time.Hour)), cur(time.Hour)), func(s *State) { s.RevokeRequested, s.Revoking = true, "old" }),
			Step{Action: StepRevoke, KID: "old", Keys: []Key{cur(time.Hour)}, PublishAhead: A, ProtectedLifetime: time.Hour}},
		{"revoked key gone: clear the annotations", nil,
			with(state(cur(time.Hour)), func(s *State) { s.RevokeRequested, s.Revoking = true, "gone" }),
			Step{Action: StepClearRevoke, KID: "gone"}},
		{"revoking, and the Secret was deleted: clear", nil, State{Revoking: "cur"},
			Step{Action: StepClearRevoke, KID: "cur"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := sp
			if c.sp != nil {
				c.sp(&s)
			}
			got := Decide(now, s, c.s)
			got.Reason = ""
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", c.want) {
				t.Fatalf("Decide = %+v\n   want %+v", got, c.want)
			}
		})
	}
}

// TestPolicyChanges: the policy changes at random (rotationPeriod,
// publishAhead, retireAfter, protectedLifetime, and for sealing the
// algorithm) while keys rotate and revokes come. A change applies from the
// current key on; in the terms of keys.json the invariants hold
// throughout: a key becomes active only once no reader can hold a copy of
// keys.json without it (I2), and every key is kept for the
// protected_lifetime keys.json states (I3).
func TestPolicyChanges(t *testing.T) {
	for _, purpose := range []string{keyset.PurposeTokenSigning, keyset.PurposePayloadSealing} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s/seed%d", purpose, seed), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(seed, 13))
				pick := func(ds ...time.Duration) time.Duration { return ds[rng.IntN(len(ds))] }
				random := func() Spec {
					for {
						algs := keyset.Algorithms(purpose)
						sp := Spec{Purpose: purpose, Algorithm: algs[rng.IntN(len(algs))],
							RotationPeriod: pick(2*time.Hour, 6*time.Hour, 30*time.Hour),
							PublishAhead:   pick(5*time.Minute, time.Hour, 5*time.Hour),
							RetireAfter:    pick(10*time.Minute, time.Hour, 3*time.Hour, 26*time.Hour),
						}
						sp.ProtectedLifetime = pick(DefaultProtectedLifetime(purpose), 10*time.Minute, 3*time.Hour)
						if sp.Validate() == nil {
							return sp
						}
					}
				}
				w := newWorld(t, random(), start)
				w.changing = true
				changes := 0
				before := func(t time.Time) time.Time {
					if !t.After(w.now) {
						return w.now
					}
					return w.now.Add(time.Duration(rng.Int64N(int64(t.Sub(w.now)))))
				}
				for w.now.Before(start.Add(180 * day)) {
					st := Decide(w.now, w.spec, w.s)
					w.apply(st)
					if st.Action != StepWait {
						if rng.IntN(8) == 0 {
							w.advance(before(w.coveredUntil()))
						}
						continue
					}
					switch rng.IntN(6) {
					case 0:
						w.advance(before(st.At))
					case 1:
						w.advance(before(w.coveredUntil()))
					default:
						w.advance(st.At)
					}
					if rng.IntN(12) == 0 {
						w.s.RevokeRequested = true
					}
					if rng.IntN(5) == 0 {
						w.spec = random()
						changes++
					}
				}
				if w.emergencies > 0 {
					t.Fatalf("%d emergency keys", w.emergencies)
				}
				t.Logf("%d writes, %d rotations, %d revokes, %d policy changes", w.writes, w.rotations, w.revokes, changes)
			})
		}
	}
}
