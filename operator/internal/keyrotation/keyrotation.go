// Package keyrotation decides, as a pure function of a KeySet's policy,
// the keys in its Secret and the time, what the KeySet's controller does
// next (CONTRACT.md, Kubernetes resources). authd activates keys by time
// (keyset.File.Active: of the keys whose window holds now, the latest
// not_before), so the policy only ever writes windows:
//
//   - the first key is active at once (nothing was published before it);
//   - each later key is in the Secret for at least publishAhead before its
//     not_before, and the key before it stays active until then;
//   - a key stays in the Secret for at least retireAfter after it stops
//     being active;
//   - not_before never changes and not_after only grows, except in a
//     revoke, which removes the active key at once and activates the
//     published successor (or a new key) in the same write.
//
// Decide returns one step at a time, each a single write to the API
// server; every step leaves a state from which the next Decide continues
// safely, so a reconcile interrupted between two writes, or whose write
// was done but not answered, resumes from what the API server holds.
package keyrotation

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"strongroom.dev/api/keyset"
)

// MaxRetiredPerPeriod bounds retireAfter / rotationPeriod: the Secret
// holds every key retired within retireAfter, and keys.json holds at most
// keyset.MaxKeys.
const MaxRetiredPerPeriod = 100

// DefaultProtectedLifetime is the longest lifetime of what a key of the
// purpose signs, seals or MACs, when the KeySet does not say.
func DefaultProtectedLifetime(purpose string) time.Duration {
	switch purpose {
	case keyset.PurposeTokenSigning:
		return time.Hour // authd's longest access-token lifetime
	case keyset.PurposeHMACSecret:
		return 24 * time.Hour // activation codes
	case keyset.PurposePayloadSealing:
		// A sealed request in flight, plus the 5-minute cache of
		// sealing-keys.json an app may seal from.
		return 10 * time.Minute
	}
	return 0
}

// Spec is the policy of one KeySet, defaults applied.
type Spec struct {
	Purpose string
	// Algorithm of new keys.
	Algorithm string
	// RotationPeriod (P) is how long each key is active.
	RotationPeriod time.Duration
	// PublishAhead (A): a key is in the Secret this long before it is
	// active.
	PublishAhead time.Duration
	// RetireAfter (R): a key stays in the Secret this long after it stops
	// being active.
	RetireAfter time.Duration
	// ProtectedLifetime is written into keys.json; RetireAfter is at
	// least as long.
	ProtectedLifetime time.Duration
}

// Validate refuses a policy under which the invariants cannot hold (the
// CRD's validation rules refuse the same; this is for the controller's
// own safety).
func (s Spec) Validate() error {
	switch {
	case !slices.Contains(keyset.Algorithms(s.Purpose), s.Algorithm):
		return fmt.Errorf("algorithm %q is not one of %s's %v", s.Algorithm, s.Purpose, keyset.Algorithms(s.Purpose))
	case s.RotationPeriod <= 0 || s.PublishAhead <= 0 || s.RetireAfter <= 0 || s.ProtectedLifetime <= 0:
		return errors.New("rotationPeriod, publishAhead, retireAfter and protectedLifetime must be positive")
	case s.PublishAhead >= s.RotationPeriod:
		return fmt.Errorf("publishAhead (%s) must be shorter than rotationPeriod (%s)", s.PublishAhead, s.RotationPeriod)
	case s.RetireAfter < s.ProtectedLifetime:
		return fmt.Errorf("retireAfter (%s) must be at least protectedLifetime (%s)", s.RetireAfter, s.ProtectedLifetime)
	case s.RetireAfter/MaxRetiredPerPeriod > s.RotationPeriod:
		return fmt.Errorf("retireAfter (%s) must be at most %d times rotationPeriod (%s)", s.RetireAfter, MaxRetiredPerPeriod, s.RotationPeriod)
	}
	return nil
}

// Key is one key of the set, without its private half. A Key in a step
// with an empty KID is a new key: the controller generates it.
type Key struct {
	KID       string
	Algorithm string
	NotBefore time.Time
	NotAfter  time.Time
}

// State is what the controller observed.
type State struct {
	// Exists: the Secret exists (with a keys.json that parses).
	Exists bool
	// Keys of keys.json.
	Keys []Key
	// PublishAhead and ProtectedLifetime as keys.json states them.
	PublishAhead      time.Duration
	ProtectedLifetime time.Duration
	// RevokeRequested: the KeySet carries rotate-now: revoke.
	RevokeRequested bool
	// Revoking is the kid the KeySet's revoking annotation names.
	Revoking string
}

// Action is the kind of a Step.
type Action string

// Actions. Every one but StepWait is one write: Create a Secret write
// (create), MarkRevoking and ClearRevoke a KeySet write, the others a
// Secret write (update) of Keys, PublishAhead and ProtectedLifetime.
const (
	// StepWait: nothing to do until At.
	StepWait Action = "Wait"
	// StepCreate: create the Secret with the first key, active at once.
	StepCreate Action = "Create"
	// StepRetire: drop the keys Retired, whose not_after has passed.
	StepRetire Action = "Retire"
	// StepAddSuccessor: publish the next key, publishAhead (or more)
	// before it becomes active, and keep the latest key active and
	// published long enough.
	StepAddSuccessor Action = "AddSuccessor"
	// StepAddEmergencyKey: no key is active (the operator was stopped
	// while every key expired): a new one is active at once.
	StepAddEmergencyKey Action = "AddEmergencyKey"
	// StepUpdateParams: protectedLifetime changed; keys.json says so, and
	// the retiring keys are kept long enough for it.
	StepUpdateParams Action = "UpdateParams"
	// StepMarkRevoking: record KID, the active key, as being revoked.
	StepMarkRevoking Action = "MarkRevoking"
	// StepRevoke: remove KID from the Secret; the published successor (or
	// a new key) is active from now.
	StepRevoke Action = "Revoke"
	// StepClearRevoke: remove the revoke annotations (Refused: there was
	// nothing to revoke).
	StepClearRevoke Action = "ClearRevoke"
)

// Step is what to do next.
type Step struct {
	Action Action
	// Keys, PublishAhead and ProtectedLifetime are the whole keys.json to
	// write (the purpose aside), for the Secret writes.
	Keys              []Key
	PublishAhead      time.Duration
	ProtectedLifetime time.Duration
	// Retired are the keys StepRetire drops.
	Retired []Key
	// KID is the key being revoked.
	KID string
	// Refused: a revoke was asked for with no active key.
	Refused bool
	// At is when to look again (StepWait): the next instant at which a
	// key is to be published, becomes active or is retired.
	At time.Time
	// NextRotation is when the next key becomes active (StepWait).
	NextRotation time.Time
	// Reason says why, for Kubernetes Events and logs.
	Reason string
}

// Decide returns the next step.
func Decide(now time.Time, sp Spec, s State) Step {
	keys := slices.Clone(s.Keys)
	write := func(a Action, reason string) Step {
		return Step{Action: a, Keys: keys, PublishAhead: s.PublishAhead, ProtectedLifetime: s.ProtectedLifetime, Reason: reason}
	}

	// 1. A revoke under way finishes first: the key leaves the Secret,
	// then the request is cleared.
	if s.Revoking != "" {
		i := slices.IndexFunc(keys, func(k Key) bool { return k.KID == s.Revoking })
		if !s.Exists || i < 0 {
			return Step{Action: StepClearRevoke, KID: s.Revoking, Reason: "the revoked key is gone from the Secret"}
		}
		revoked := keys[i]
		cur, isActive := Active(now, keys)
		keys = slices.Delete(keys, i, i+1)
		reason, ahead := "revoked: it was no longer active", s.PublishAhead
		if isActive && cur.KID == revoked.KID {
			// Something fresh must take over at once: an older key still
			// in its window would otherwise be active again.
			if j := earliestFuture(now, keys); j >= 0 {
				// Readers may hold copies of keys.json without the key
				// after this one until this one's not_before as planned
				// (publishAhead may have been lowered since it was
				// published): keys.json says so, and the next key is
				// published at least that long ahead.
				ahead = max(ahead, keys[j].NotBefore.Sub(now))
				keys[j].NotBefore = now
				reason = "revoked: the published successor is active from now"
			} else {
				keys = append(keys, newKey(now, sp))
				reason = "revoked: a new key is active from now"
			}
		}
		st := write(StepRevoke, reason)
		st.KID, st.PublishAhead = revoked.KID, ahead
		return st
	}

	// 2. A revoke asked for: first record which key (the one active now),
	// so that a reconcile resumed later revokes that one and no other.
	if s.RevokeRequested {
		if k, ok := Active(now, keys); ok && s.Exists {
			return Step{Action: StepMarkRevoking, KID: k.KID, Reason: "revoke requested"}
		}
		return Step{Action: StepClearRevoke, Refused: true, Reason: "no key is active: nothing to revoke"}
	}

	// 3. The first key: nothing was ever published, so it is active at
	// once.
	if !s.Exists {
		keys = []Key{newKey(now, sp)}
		return Step{Action: StepCreate, Keys: keys, PublishAhead: sp.PublishAhead, ProtectedLifetime: sp.ProtectedLifetime,
			Reason: "first key, active at once"}
	}

	// 4. Keys past their not_after go.
	var retired []Key
	keys = slices.DeleteFunc(keys, func(k Key) bool {
		if !now.Before(k.NotAfter) {
			retired = append(retired, k)
			return true
		}
		return false
	})
	if len(retired) > 0 {
		st := write(StepRetire, "past not_after")
		st.Retired = retired
		return st
	}

	// 5. No active key: only when every key expired while the operator
	// was stopped (or after a hand edit). Better an unpublished key than
	// none.
	if _, ok := Active(now, keys); !ok {
		keys = append(keys, newKey(now, sp))
		return write(StepAddEmergencyKey, "no key was active: a new key is active at once, unpublished")
	}

	// 6. A new protectedLifetime: keys.json promises it, so every key no
	// longer active is kept that long after it stopped being active.
	if s.ProtectedLifetime != sp.ProtectedLifetime {
		for i, k := range keys {
			if stopped, ok := activeEnd(k, keys); ok {
				keys[i].NotAfter = later(k.NotAfter, stopped.Add(sp.ProtectedLifetime))
			}
		}
		// Before any successor, so that no write keeps a promise
		// retireAfter no longer backs.
		st := write(StepUpdateParams, "protectedLifetime changed")
		st.ProtectedLifetime = sp.ProtectedLifetime
		return st
	}

	// 7. The successor, publishAhead before the latest key's planned end.
	// An operator that comes late never activates a key before it was
	// published for publishAhead: the latest key stays active longer.
	l := latest(keys)
	end, ahead := plannedEnd(sp, keys[l]), publishAhead(sp, s)
	if !now.Before(end.Add(-ahead)) {
		nb := later(end, now.Add(ahead))
		keys[l].NotAfter = later(keys[l].NotAfter, nb.Add(sp.RetireAfter))
		keys = append(keys, Key{Algorithm: sp.Algorithm, NotBefore: nb, NotAfter: nb.Add(sp.RotationPeriod + sp.RetireAfter)})
		st := write(StepAddSuccessor, "the next key, published ahead of its use")
		// The file's publishAhead changes only here, with a key published
		// at least as long ahead as either value asks: a reader's cache
		// set from the old value has expired before the next key is
		// published under the new one.
		st.PublishAhead = sp.PublishAhead
		return st
	}

	// 8. Nothing to do until the next transition.
	at, next := end.Add(-ahead), end
	for _, k := range keys {
		if k.NotBefore.After(now) {
			at = earlier(at, k.NotBefore)
			next = earlier(next, k.NotBefore)
		}
		at = earlier(at, k.NotAfter)
	}
	return Step{Action: StepWait, At: at, NextRotation: next, Reason: "up to date"}
}

// Active is the key keys.json makes active at now (keyset.File.Active,
// the very rule authd applies).
func Active(now time.Time, keys []Key) (Key, bool) {
	f := keyset.File{Keys: make([]keyset.Key, len(keys))}
	for i, k := range keys {
		f.Keys[i] = keyset.Key{KID: k.KID, Algorithm: k.Algorithm, NotBefore: k.NotBefore, NotAfter: k.NotAfter}
	}
	k, ok := f.Active(now)
	if !ok {
		return Key{}, false
	}
	return Key{KID: k.KID, Algorithm: k.Algorithm, NotBefore: k.NotBefore, NotAfter: k.NotAfter}, true
}

func newKey(now time.Time, sp Spec) Key {
	return Key{Algorithm: sp.Algorithm, NotBefore: now, NotAfter: now.Add(sp.RotationPeriod + sp.RetireAfter)}
}

// latest is the index of the key with the latest not_before (ties as
// Active breaks them: the greater kid).
func latest(keys []Key) int {
	l := 0
	for i, k := range keys[1:] {
		if c := k.NotBefore.Compare(keys[l].NotBefore); c > 0 || c == 0 && k.KID > keys[l].KID {
			l = i + 1
		}
	}
	return l
}

// plannedEnd is when k, the latest key, is to stop being active:
// rotationPeriod after its not_before, or earlier if its not_after would
// not keep it retireAfter beyond (a policy changed since it was made: its
// not_after is raised, never lowered). Never before its not_before.
func plannedEnd(sp Spec, k Key) time.Time {
	end := earlier(k.NotBefore.Add(sp.RotationPeriod), k.NotAfter.Add(-sp.RetireAfter))
	return later(end, k.NotBefore)
}

// publishAhead is how long ahead the next key is published: the policy's,
// or the value keys.json still states if longer (readers may cache for
// up to that long).
func publishAhead(sp Spec, s State) time.Duration {
	return max(sp.PublishAhead, s.PublishAhead)
}

// activeEnd is when k stopped (or stops) being active: the not_before of
// the key after it. ok is false for the latest key.
func activeEnd(k Key, keys []Key) (time.Time, bool) {
	var end time.Time
	for _, n := range keys {
		if n.NotBefore.After(k.NotBefore) && (end.IsZero() || n.NotBefore.Before(end)) {
			end = n.NotBefore
		}
	}
	return end, !end.IsZero()
}

// earliestFuture is the index of the key with the earliest not_before
// after now, or -1.
func earliestFuture(now time.Time, keys []Key) int {
	j := -1
	for i, k := range keys {
		if k.NotBefore.After(now) && (j < 0 || k.NotBefore.Before(keys[j].NotBefore)) {
			j = i
		}
	}
	return j
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
