// Package rotation decides, as pure functions of what the controller
// observed and the time, what a PinnedCertificate's controller does next:
// which key to create, which pin set to publish, which certificate to
// serve, which key to drop, and when to look again (CONTRACT.md, Pinning).
//
// Decide returns one step at a time, each meant to be a single write to
// the API server. Every step leaves a state from which the next Decide
// continues safely, so a reconcile interrupted between any two writes
// never breaks the pinning invariant:
//
//   - a certificate is served only with a key whose pin has been published
//     for at least PublishAhead (the very first certificate excepted: apps
//     ship the initial pins compiled in);
//   - a pin stays published until every certificate with its key has
//     expired, except a compromised key's, which an emergency removes at
//     once;
//   - the pin set's version only grows.
package rotation

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Role is what a key is for.
type Role string

// Roles. The pins of current, next, backup and (until their certificates
// expire) retired keys are published; a compromised key's pin is not.
const (
	Current     Role = "current"
	Next        Role = "next"
	Backup      Role = "backup"
	Retired     Role = "retired"
	Compromised Role = "compromised"
)

// Key is one key of a pinned certificate as the controller observed it.
type Key struct {
	// Name identifies the key (its Secret).
	Name string
	// Pin is base64(SHA-256(SubjectPublicKeyInfo)).
	Pin  string
	Role Role
	// Published is when a published pin set first carried the pin (zero:
	// not yet). The controller records it with the pin set, in one write.
	Published time.Time
	// CertsExpire is the latest NotAfter of the certificates issued, or
	// about to be issued, with the key (zero: none). The controller records
	// it before it issues (StepRecordExpiry), so it never understates.
	CertsExpire time.Time
}

// Cert is the certificate being served.
type Cert struct {
	Key       string
	NotBefore time.Time
	NotAfter  time.Time
}

// State is everything Decide looks at.
type State struct {
	Keys    []Key
	Serving *Cert // nil before the first certificate
	// PinSetVersion and PublishedPins are the published pin set.
	PinSetVersion int64
	PublishedPins []string
	// EmergencyRequested: the resource carries rotate-now: backup.
	EmergencyRequested bool
	// Resign: the published pin set was signed by another manifest key
	// than the one that signs now; it is published again, same pins.
	Resign bool
}

// Spec is the policy of one PinnedCertificate.
type Spec struct {
	Validity     time.Duration
	RenewBefore  time.Duration
	PublishAhead time.Duration
	Backups      int
}

// Validate refuses a policy under which the invariant cannot hold: the next
// key must be published for PublishAhead before the current certificate is
// due for renewal, so PublishAhead < Validity - RenewBefore.
func (s Spec) Validate() error {
	switch {
	case s.Validity <= 0 || s.RenewBefore <= 0 || s.PublishAhead <= 0:
		return errors.New("validity, renewBefore and publishAhead must be positive")
	case s.RenewBefore >= s.Validity:
		return errors.New("renewBefore must be shorter than validity")
	case s.PublishAhead >= s.Validity-s.RenewBefore:
		return fmt.Errorf("publishAhead (%s) must be shorter than validity - renewBefore (%s)", s.PublishAhead, s.Validity-s.RenewBefore)
	case s.Backups < 1:
		return errors.New("backupKeys must be at least 1")
	}
	return nil
}

// Action is the kind of a Step.
type Action string

// Actions.
const (
	// StepWait: nothing to do until At (zero: until something changes).
	StepWait Action = "Wait"
	// StepCreateKey: generate a key with Role.
	StepCreateKey Action = "CreateKey"
	// StepSetRole: give Key the role Role.
	StepSetRole Action = "SetRole"
	// StepPublish: publish Pins as version Version, recording now as the
	// publication time of the pins that are new.
	StepPublish Action = "Publish"
	// StepRecordExpiry: record NotAfter as Key's CertsExpire, before a
	// certificate with that expiry is issued.
	StepRecordExpiry Action = "RecordExpiry"
	// StepIssue: serve a new certificate with Key, valid NotBefore..NotAfter.
	StepIssue Action = "Issue"
	// StepDeleteKey: delete Key (its pin is no longer published).
	StepDeleteKey Action = "DeleteKey"
	// StepClearEmergency: remove the rotate-now request; NoAgedBackup
	// says it was refused because no backup was aged enough.
	StepClearEmergency Action = "ClearEmergency"
)

// Step is what to do next.
type Step struct {
	Action    Action
	Key       string
	Role      Role
	Pins      []string
	Version   int64
	NotBefore time.Time
	NotAfter  time.Time
	// At is when to look again, for StepWait.
	At time.Time
	// NoAgedBackup: an emergency was requested and no backup could serve.
	NoAgedBackup bool
	// Reason says why, for Kubernetes Events and logs.
	Reason string
}

// Decide returns the next step.
func Decide(now time.Time, spec Spec, s State) Step {
	keys := func(r Role) []Key {
		var out []Key
		for _, k := range s.Keys {
			if k.Role == r {
				out = append(out, k)
			}
		}
		return out
	}
	byName := func(name string) (Key, bool) {
		for _, k := range s.Keys {
			if k.Name == name {
				return k, true
			}
		}
		return Key{}, false
	}
	published := func(k Key) bool { return slices.Contains(s.PublishedPins, k.Pin) }
	aged := func(k Key) bool {
		return published(k) && !k.Published.IsZero() && !now.Before(k.Published.Add(spec.PublishAhead))
	}

	// 1. An emergency: the serving key is taken as compromised, and an
	// aged backup takes over.
	if s.EmergencyRequested {
		if len(keys(Compromised)) > 0 {
			return Step{Action: StepClearEmergency, Reason: "an emergency rotation is already under way"}
		}
		if _, ok := oldestAged(keys(Backup), aged); !ok || s.Serving == nil {
			return Step{Action: StepClearEmergency, NoAgedBackup: true,
				Reason: "no backup key's pin has been published for publishAhead: nothing changed"}
		}
		return Step{Action: StepSetRole, Key: s.Serving.Key, Role: Compromised,
			Reason: "emergency: the serving key is replaced by an aged backup"}
	}

	// 2. The serving certificate must not use a compromised key.
	if s.Serving != nil {
		if k, ok := byName(s.Serving.Key); ok && k.Role == Compromised {
			b, ok := oldestAged(keys(Backup), aged)
			if !ok {
				// Checked before marking; only a backup deleted by hand
				// since then gets here. As with an emergency refused at
				// once, nothing changes: the key serves on as the current
				// one (its pin still published), and the keys and pin set
				// are looked after again from there.
				return Step{Action: StepSetRole, Key: k.Name, Role: Current, NoAgedBackup: true,
					Reason: "no aged backup key is left to take over from the compromised key: it keeps serving"}
			}
			return issue(now, spec, b, "emergency: an aged backup takes over")
		}
	}

	// 3. Roles follow the serving certificate: its key is the current one
	// (after a rotation, or an interrupted one), and a current key that no
	// longer serves is retired.
	if s.Serving != nil {
		if k, ok := byName(s.Serving.Key); ok && k.Role != Current {
			return Step{Action: StepSetRole, Key: k.Name, Role: Current, Reason: "the serving certificate's key is the current key"}
		}
		for _, k := range keys(Current) {
			if k.Name != s.Serving.Key {
				return Step{Action: StepSetRole, Key: k.Name, Role: Retired, Reason: "no longer served: published until its certificates expire"}
			}
		}
	}

	// 4. Keys: a current one (first start), a next one, enough backups.
	switch {
	case len(keys(Current)) == 0 && s.Serving == nil:
		return Step{Action: StepCreateKey, Role: Current, Reason: "first key"}
	case len(keys(Next)) == 0:
		return Step{Action: StepCreateKey, Role: Next, Reason: "a next key, published ahead of its use"}
	case len(keys(Backup)) < spec.Backups:
		return Step{Action: StepCreateKey, Role: Backup, Reason: "a backup key, published for emergencies"}
	case len(keys(Next)) > 1:
		// Only after a hand edit: the next key published longest ago
		// stays next, the others become backups.
		ns := keys(Next)
		keep := ns[0]
		for _, k := range ns[1:] {
			if younger(keep, k) {
				keep = k
			}
		}
		for _, k := range ns {
			if k.Name != keep.Name {
				return Step{Action: StepSetRole, Key: k.Name, Role: Backup, Reason: "one next key is enough"}
			}
		}
	case len(keys(Backup)) > spec.Backups:
		// backupKeys was lowered: the youngest surplus backup goes.
		b := keys(Backup)
		youngest := b[0]
		for _, k := range b[1:] {
			if younger(k, youngest) {
				youngest = k
			}
		}
		return Step{Action: StepSetRole, Key: youngest.Name, Role: Retired, Reason: "more backup keys than backupKeys asks for"}
	}

	// 5. The pin set: every key that may serve or has served unexpired
	// certificates, and nothing else.
	want := wantedPins(now, s.Keys)
	if !slices.Equal(want, s.PublishedPins) {
		return Step{Action: StepPublish, Pins: want, Version: s.PinSetVersion + 1, Reason: "the pin set changed"}
	}
	if s.Resign {
		return Step{Action: StepPublish, Pins: want, Version: s.PinSetVersion + 1, Reason: "the signing manifest key changed"}
	}

	// 6. Keys whose pins are gone can go.
	for _, k := range s.Keys {
		if (k.Role == Compromised || k.Role == Retired) && !published(k) && (s.Serving == nil || s.Serving.Key != k.Name) {
			return Step{Action: StepDeleteKey, Key: k.Name, Reason: "its pin is no longer published"}
		}
	}

	// 7. The first certificate, or a renewal: with the next key when its
	// pin is aged, else once more with the current key.
	if s.Serving == nil {
		cur := keys(Current)[0]
		return issue(now, spec, cur, "first certificate (its pin is compiled into the apps)")
	}
	renewAt := s.Serving.NotAfter.Add(-spec.RenewBefore)
	cur, known := byName(s.Serving.Key)
	if !now.Before(renewAt) || !known {
		if n := keys(Next)[0]; aged(n) {
			return issue(now, spec, n, "planned rotation to the next key")
		}
		if !known {
			// Its key was deleted by hand: only an aged pin may serve.
			return Step{Action: StepWait, At: keys(Next)[0].Published.Add(spec.PublishAhead),
				Reason: "the serving key is missing and the next key's pin is not aged yet"}
		}
		return issue(now, spec, cur, "renewal with the same key: the next key's pin is not aged yet")
	}

	// 8. Nothing to do: look again at the next transition.
	at := renewAt
	for _, k := range s.Keys {
		if k.Role == Retired && k.CertsExpire.After(now) && k.CertsExpire.Before(at) {
			at = k.CertsExpire
		}
	}
	return Step{Action: StepWait, At: at, Reason: "up to date"}
}

// issue is the step that serves a new certificate with k: first its expiry
// is recorded on the key (so the pin is never dropped too early), then the
// certificate is issued with exactly that expiry.
func issue(now time.Time, spec Spec, k Key, reason string) Step {
	notAfter := now.Add(spec.Validity)
	if k.CertsExpire.After(now) && !k.CertsExpire.After(notAfter) && k.CertsExpire.After(now.Add(spec.RenewBefore)) {
		// Recorded by an earlier reconcile: issue with it.
		return Step{Action: StepIssue, Key: k.Name, NotBefore: now, NotAfter: k.CertsExpire, Reason: reason}
	}
	return Step{Action: StepRecordExpiry, Key: k.Name, NotAfter: notAfter, Reason: reason}
}

// younger: a was published after b (never published counts as youngest).
func younger(a, b Key) bool {
	switch {
	case a.Published.IsZero():
		return !b.Published.IsZero()
	case b.Published.IsZero():
		return false
	}
	return a.Published.After(b.Published)
}

// oldestAged is the backup published longest ago among those aged.
func oldestAged(backups []Key, aged func(Key) bool) (Key, bool) {
	var best Key
	found := false
	for _, k := range backups {
		if aged(k) && (!found || k.Published.Before(best.Published) || k.Published.Equal(best.Published) && k.Name < best.Name) {
			best, found = k, true
		}
	}
	return best, found
}

// roleOrder lists pins current first, then next, backups, retired.
var roleOrder = map[Role]int{Current: 0, Next: 1, Backup: 2, Retired: 3}

// wantedPins is the pin set the keys call for, in a stable order.
func wantedPins(now time.Time, keys []Key) []string {
	var ks []Key
	for _, k := range keys {
		switch {
		case k.Role == Compromised:
		case k.Role == Retired && !k.CertsExpire.After(now):
		default:
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, func(a, b Key) int {
		if d := roleOrder[a.Role] - roleOrder[b.Role]; d != 0 {
			return d
		}
		return compare(a.Name, b.Name)
	})
	var pins []string
	for _, k := range ks {
		if !slices.Contains(pins, k.Pin) {
			pins = append(pins, k.Pin)
		}
	}
	return pins
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
