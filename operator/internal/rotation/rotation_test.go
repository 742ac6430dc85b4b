package rotation

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var day = 24 * time.Hour

func spec() Spec {
	return Spec{Validity: 90 * day, RenewBefore: 30 * day, PublishAhead: 14 * day, Backups: 2}
}

// world executes steps the way the controller does, one write each, and
// checks the pinning invariant after every one of them.
type world struct {
	t     *testing.T
	spec  Spec
	now   time.Time
	s     State
	n     int
	first bool // the first certificate was issued
	// issued remembers every certificate served, to check pins against.
	issued []Cert
	// compromised keys, whose pins may leave the set at once.
	compromised map[string]bool
	steps       int
}

func newWorld(t *testing.T, sp Spec, start time.Time) *world {
	return &world{t: t, spec: sp, now: start, compromised: map[string]bool{}}
}

func (w *world) key(name string) *Key {
	for i := range w.s.Keys {
		if w.s.Keys[i].Name == name {
			return &w.s.Keys[i]
		}
	}
	w.t.Fatalf("step on unknown key %q", name)
	return nil
}

// apply executes one step and checks the invariant.
func (w *world) apply(st Step) {
	w.t.Helper()
	w.steps++
	before := slices.Clone(w.s.PublishedPins)
	version := w.s.PinSetVersion
	switch st.Action {
	case StepCreateKey:
		w.n++
		w.s.Keys = append(w.s.Keys, Key{Name: fmt.Sprintf("k%d", w.n), Pin: fmt.Sprintf("pin%d", w.n), Role: st.Role})
	case StepSetRole:
		k := w.key(st.Key)
		k.Role = st.Role
		if st.Role == Compromised {
			w.compromised[k.Name] = true
		}
	case StepPublish:
		if st.Version <= w.s.PinSetVersion {
			w.t.Fatalf("pin set version %d after %d", st.Version, w.s.PinSetVersion)
		}
		for i := range w.s.Keys {
			k := &w.s.Keys[i]
			if slices.Contains(st.Pins, k.Pin) && !slices.Contains(w.s.PublishedPins, k.Pin) && k.Published.IsZero() {
				k.Published = w.now
			}
		}
		w.s.PublishedPins, w.s.PinSetVersion = slices.Clone(st.Pins), st.Version
	case StepRecordExpiry:
		k := w.key(st.Key)
		if st.NotAfter.After(k.CertsExpire) {
			k.CertsExpire = st.NotAfter
		}
	case StepIssue:
		k := w.key(st.Key)
		if !slices.Contains(w.s.PublishedPins, k.Pin) {
			w.t.Fatalf("%s: issued with unpublished pin %s", w.now, k.Pin)
		}
		if w.first && w.now.Before(k.Published.Add(w.spec.PublishAhead)) {
			w.t.Fatalf("%s: issued with %s, published only at %s", w.now, k.Name, k.Published)
		}
		if st.NotAfter.After(k.CertsExpire) {
			w.t.Fatalf("%s: certificate until %s, but the key records %s", w.now, st.NotAfter, k.CertsExpire)
		}
		if !st.NotAfter.After(w.now) || st.NotAfter.After(w.now.Add(w.spec.Validity)) {
			w.t.Fatalf("%s: certificate valid until %s", w.now, st.NotAfter)
		}
		c := Cert{Key: k.Name, NotBefore: st.NotBefore, NotAfter: st.NotAfter}
		w.s.Serving, w.first = &c, true
		w.issued = append(w.issued, Cert{Key: k.Pin, NotBefore: st.NotBefore, NotAfter: st.NotAfter})
	case StepDeleteKey:
		k := w.key(st.Key)
		if slices.Contains(w.s.PublishedPins, k.Pin) {
			w.t.Fatalf("deleted %s while its pin is published", k.Name)
		}
		w.s.Keys = slices.DeleteFunc(w.s.Keys, func(x Key) bool { return x.Name == st.Key })
	case StepClearEmergency:
		w.s.EmergencyRequested = false
	case StepWait:
	default:
		w.t.Fatalf("unknown step %+v", st)
	}
	if w.s.PinSetVersion < version {
		w.t.Fatal("the pin set version went back")
	}
	// Nothing leaves the pin set early: a pin removed is a compromised
	// key's, or every certificate with it has expired.
	for _, p := range before {
		if slices.Contains(w.s.PublishedPins, p) {
			continue
		}
		for _, c := range w.issued {
			if c.Key == p && c.NotAfter.After(w.now) && !w.compromisedPin(p) {
				w.t.Fatalf("%s: pin %s unpublished while a certificate with it is valid until %s", w.now, p, c.NotAfter)
			}
		}
	}
	// The served certificate's pin is published.
	if w.s.Serving != nil {
		if k := w.key(w.s.Serving.Key); !slices.Contains(w.s.PublishedPins, k.Pin) && !w.compromised[k.Name] {
			w.t.Fatalf("%s: serving %s, whose pin is not published", w.now, k.Name)
		}
	}
}

func (w *world) compromisedPin(pin string) bool {
	for name := range w.compromised {
		if strings.TrimPrefix(name, "k") == strings.TrimPrefix(pin, "pin") {
			return true
		}
	}
	return false
}

// settle runs steps until Decide says wait, and returns that step.
func (w *world) settle() Step {
	w.t.Helper()
	for i := 0; i < 50; i++ {
		st := Decide(w.now, w.spec, w.s)
		if st.Action == StepWait {
			w.apply(st)
			return st
		}
		w.apply(st)
	}
	w.t.Fatalf("%s: no rest after 50 steps: %+v", w.now, w.s)
	return Step{}
}

// settled checks what must hold whenever the controller is at rest.
func (w *world) settled() {
	w.t.Helper()
	count := map[Role]int{}
	for _, k := range w.s.Keys {
		count[k.Role]++
	}
	if count[Current] != 1 || count[Next] != 1 || count[Backup] < w.spec.Backups || count[Compromised] != 0 {
		w.t.Fatalf("%s: at rest with keys %v", w.now, count)
	}
	if w.s.Serving == nil || !w.s.Serving.NotAfter.After(w.now) {
		w.t.Fatalf("%s: nothing valid served", w.now)
	}
}

func TestTwoYearsOfRotations(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			w := newWorld(t, spec(), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
			end := w.now.Add(2 * 365 * day)
			rotations, keys := 0, map[string]bool{}
			for w.now.Before(end) {
				st := w.settle()
				w.settled()
				keys[w.s.Serving.Key] = true
				if st.At.IsZero() || !st.At.After(w.now) {
					t.Fatalf("%s: wait without a future time: %+v", w.now, st)
				}
				// The controller wakes at the transition, or earlier for an
				// unrelated event, or later after an outage of up to a day.
				switch r.IntN(4) {
				case 0:
					w.now = w.now.Add(time.Duration(r.Int64N(int64(st.At.Sub(w.now)))))
				case 1:
					w.now = st.At.Add(time.Duration(r.Int64N(int64(day))))
				default:
					w.now = st.At
				}
			}
			rotations = len(keys)
			// 90-day certificates renewed 30 days early: a new key every 60
			// days, about 12 in two years.
			if rotations < 11 {
				t.Fatalf("%d keys served in two years", rotations)
			}
			if w.s.PinSetVersion < int64(rotations) {
				t.Fatalf("pin set version %d after %d rotations", w.s.PinSetVersion, rotations)
			}
		})
	}
}

// TestInterruptedReconciles: a reconcile may stop between any two writes
// and resume later (hours later, or at once); wherever it stops, the next
// run continues safely.
func TestInterruptedReconciles(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 1))
	w := newWorld(t, spec(), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	end := w.now.Add(365 * day)
	for w.now.Before(end) {
		st := Decide(w.now, w.spec, w.s)
		w.apply(st)
		switch {
		case st.Action == StepWait:
			w.now = st.At
		case r.IntN(5) == 0:
			// The manager died after this write; it comes back later.
			w.now = w.now.Add(time.Duration(r.Int64N(int64(12 * time.Hour))))
		}
		if r.IntN(40) == 0 && w.first {
			w.s.EmergencyRequested = true
		}
	}
}

func TestEmergency(t *testing.T) {
	w := newWorld(t, spec(), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	w.settle()
	first := w.s.Serving.Key

	// Too early: no backup has been published for publishAhead.
	w.now = w.now.Add(day)
	w.s.EmergencyRequested = true
	st := Decide(w.now, w.spec, w.s)
	if st.Action != StepClearEmergency || !st.NoAgedBackup {
		t.Fatalf("emergency without an aged backup: %+v", st)
	}
	w.apply(st)
	w.settle()
	if w.s.Serving.Key != first {
		t.Fatal("a refused emergency changed the served key")
	}

	// Later: an aged backup takes over, the compromised pin leaves the set
	// at once, and a new backup is created.
	w.now = w.now.Add(20 * day)
	w.s.EmergencyRequested = true
	version := w.s.PinSetVersion
	compromisedPin := w.key(first).Pin
	w.settle()
	w.settled()
	if w.s.Serving.Key == first {
		t.Fatal("the emergency did not change the served key")
	}
	if slices.Contains(w.s.PublishedPins, compromisedPin) {
		t.Fatal("the compromised pin is still published")
	}
	if w.s.PinSetVersion <= version {
		t.Fatal("the pin set was not republished")
	}
	for _, k := range w.s.Keys {
		if k.Name == first {
			t.Fatal("the compromised key was kept")
		}
	}
	// A second emergency at once: the other original backup is aged too.
	w.s.EmergencyRequested = true
	second := w.s.Serving.Key
	w.settle()
	w.settled()
	if w.s.Serving.Key == second {
		t.Fatal("the second emergency did not use the remaining aged backup")
	}
	// A third: only fresh backups are left.
	w.s.EmergencyRequested = true
	st = Decide(w.now, w.spec, w.s)
	if st.Action != StepClearEmergency || !st.NoAgedBackup {
		t.Fatalf("third emergency: %+v", st)
	}
}

func TestSpecValidate(t *testing.T) {
	good := spec()
	cases := map[string]func(*Spec){
		"publishAhead = validity - renewBefore": func(s *Spec) { s.PublishAhead = s.Validity - s.RenewBefore },
		"renewBefore = validity":                func(s *Spec) { s.RenewBefore = s.Validity },
		"no backups":                            func(s *Spec) { s.Backups = 0 },
		"zero validity":                         func(s *Spec) { s.Validity = 0 },
		"negative publishAhead":                 func(s *Spec) { s.PublishAhead = -day },
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range cases {
		s := good
		mutate(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDecide: single decisions in states the simulations rarely reach.
func TestDecide(t *testing.T) {
	now := time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	sp := spec()
	aged, fresh := now.Add(-20*day), now.Add(-day)
	base := func(nextPublished time.Time, servingUntil time.Time) State {
		return State{
			Keys: []Key{
				{Name: "cur", Pin: "p-cur", Role: Current, Published: aged, CertsExpire: servingUntil},
				{Name: "nxt", Pin: "p-nxt", Role: Next, Published: nextPublished},
				{Name: "b1", Pin: "p-b1", Role: Backup, Published: aged},
				{Name: "b2", Pin: "p-b2", Role: Backup, Published: aged},
			},
			Serving:       &Cert{Key: "cur", NotBefore: servingUntil.Add(-sp.Validity), NotAfter: servingUntil},
			PinSetVersion: 3, PublishedPins: []string{"p-cur", "p-nxt", "p-b1", "p-b2"},
		}
	}
	cases := []struct {
		name string
		s    State
		want Step
	}{
		{"first start", State{}, Step{Action: StepCreateKey, Role: Current}},
		{"renewal due, next aged: rotate", base(aged, now.Add(10*day)),
			Step{Action: StepRecordExpiry, Key: "nxt", NotAfter: now.Add(sp.Validity)}},
		{"renewal due, next not aged: same key again", base(fresh, now.Add(10*day)),
			Step{Action: StepRecordExpiry, Key: "cur", NotAfter: now.Add(sp.Validity)}},
		{"not due", base(aged, now.Add(40*day)), Step{Action: StepWait, At: now.Add(10 * day)}},
		{"next not published yet", func() State {
			s := base(time.Time{}, now.Add(40*day))
			s.PublishedPins = []string{"p-cur", "p-b1", "p-b2"}
			return s
		}(), Step{Action: StepPublish, Pins: []string{"p-cur", "p-nxt", "p-b1", "p-b2"}, Version: 4}},
		{"serving key deleted by hand, next not aged", func() State {
			s := base(fresh, now.Add(40*day))
			s.Keys = s.Keys[1:]
			s.Keys = append(s.Keys, Key{Name: "cur2", Pin: "p-cur2", Role: Current, Published: aged})
			return s
		}(), Step{Action: StepSetRole, Key: "cur2", Role: Retired}},
		{"two next keys (a hand edit): the younger becomes a backup", func() State {
			s := base(aged, now.Add(40*day))
			s.Keys = append(s.Keys, Key{Name: "nxt0", Pin: "p-nxt0", Role: Next, Published: fresh})
			return s
		}(), Step{Action: StepSetRole, Key: "nxt0", Role: Backup}},
		{"backupKeys lowered: the youngest backup retires", func() State {
			s := base(aged, now.Add(40*day))
			s.Keys = append(s.Keys, Key{Name: "b0", Pin: "p-b0", Role: Backup, Published: fresh})
			return s
		}(), Step{Action: StepSetRole, Key: "b0", Role: Retired}},
		{"the manifest key changed: same pins, signed again", func() State {
			s := base(aged, now.Add(40*day))
			s.Resign = true
			return s
		}(), Step{Action: StepPublish, Pins: []string{"p-cur", "p-nxt", "p-b1", "p-b2"}, Version: 4}},
		{"compromised, and the aged backups deleted by hand since: it serves on as current", func() State {
			s := base(aged, now.Add(40*day))
			s.Keys[0].Role = Compromised
			s.Keys = s.Keys[:2]
			return s
		}(), Step{Action: StepSetRole, Key: "cur", Role: Current, NoAgedBackup: true}},
		{"emergency before any certificate", State{EmergencyRequested: true}, Step{Action: StepClearEmergency, NoAgedBackup: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Decide(now, sp, c.s)
			got.Reason = ""
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", c.want) {
				t.Fatalf("Decide = %+v\n want %+v", got, c.want)
			}
		})
	}
}
