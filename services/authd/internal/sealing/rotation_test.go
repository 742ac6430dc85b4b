package sealing

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/mounted"
)

// TestKeysAtWindow: a key is listed from its NotBefore to its NotAfter,
// both inclusive, and opens from before its NotBefore to its NotAfter.
func TestKeysAtWindow(t *testing.T) {
	k := mustGenerate(t, KEMXWing, testNow.Add(time.Hour))
	k.NotBefore = testNow
	always := mustGenerate(t, KEMX25519, testLater) // Generate: no NotBefore
	r := mustRing(t, k, always)
	info, aad := []byte(InfoPasscode), PasscodeAAD("d", "j")
	sealed, err := Seal(k.Public(), info, aad, []byte("123456"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name         string
		now          time.Time
		listed, open bool
	}{
		{"a day before not_before", testNow.Add(-24 * time.Hour), false, true},
		{"just before not_before", testNow.Add(-time.Nanosecond), false, true},
		{"at not_before", testNow, true, true},
		{"at not_after", k.NotAfter, true, true},
		{"just after not_after", k.NotAfter.Add(time.Nanosecond), false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			kids := kidsOf(r.KeysAt(c.now))
			if slices.Contains(kids, k.KID) != c.listed || !slices.Contains(kids, always.KID) {
				t.Fatalf("KeysAt = %v; want %s listed: %v, and the key without NotBefore", kids, k.KID, c.listed)
			}
			_, err := r.Open(k.KID, sealed, info, aad, c.now)
			if (err == nil) != c.open || (err != nil && !errors.Is(err, ErrUnknownKID)) {
				t.Fatalf("Open = %v; want it to open: %v", err, c.open)
			}
		})
	}
}

// TestRotationByTime follows a payload-sealing KeySet through rotations
// (a key published ahead, then active, the old one kept, then dropped)
// with two replicas on the same mount: one re-reading keys.json at once,
// one only every 40 minutes. Because keys are listed by time, not by
// reload, both publish the same document at every instant at which both
// hold the keys listed — always here, as the operator publishes keys an
// hour ahead — and whatever either publishes opens at both.
func TestRotationByTime(t *testing.T) {
	t0 := testNow
	const publishAhead = time.Hour
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	a := newKeySetKey(t, keyset.XWing, at(-2*time.Hour), at(150*time.Minute))
	x := newKeySetKey(t, keyset.X25519, at(-2*time.Hour), at(8*time.Hour)) // for old clients, throughout
	b := newKeySetKey(t, keyset.XWing, at(70*time.Minute), at(5*time.Hour))
	c := newKeySetKey(t, keyset.XWing, at(190*time.Minute), at(8*time.Hour))
	all := []keyset.Key{a, x, b, c}

	// The operator's versions of keys.json: each key appears publishAhead
	// before its not_before and goes a little after its not_after.
	type version struct {
		at   time.Time
		keys []keyset.Key
	}
	versions := []version{
		{t0, []keyset.Key{a, x}},
		{b.NotBefore.Add(-publishAhead), []keyset.Key{a, x, b}},
		{c.NotBefore.Add(-publishAhead), []keyset.Key{a, x, b, c}},
		{a.NotAfter.Add(10 * time.Minute), []keyset.Key{x, b, c}},
		{b.NotAfter.Add(10 * time.Minute), []keyset.Key{x, c}},
	}
	file := func(keys []keyset.Key) []byte {
		f := keyset.File{
			Purpose:           keyset.PurposePayloadSealing,
			PublishAhead:      keyset.Duration(publishAhead),
			ProtectedLifetime: keyset.Duration(time.Hour),
			Keys:              keys,
		}
		data, err := f.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	kidSet := func(keys []keyset.Key) map[string]bool {
		out := map[string]bool{}
		for _, k := range keys {
			out[k.KID] = true
		}
		return out
	}

	// Instants: every 5 minutes, each version's write, and each key's
	// window edges.
	end := at(6 * time.Hour)
	var instants []time.Time
	for i := t0; !i.After(end); i = i.Add(5 * time.Minute) {
		instants = append(instants, i)
	}
	for _, v := range versions {
		instants = append(instants, v.at)
	}
	for _, k := range all {
		instants = append(instants, k.NotBefore.Add(-time.Second), k.NotBefore, k.NotAfter, k.NotAfter.Add(time.Second))
	}
	instants = slices.DeleteFunc(instants, func(i time.Time) bool { return i.Before(t0) || i.After(end) })
	slices.SortFunc(instants, time.Time.Compare)
	instants = slices.CompactFunc(instants, time.Time.Equal)

	clk := newClock(t0)
	m := newKubeMount(t, file(versions[0].keys))
	prompt := mustMount(t, m.dir, mounted.Options{Now: clk.now, Interval: time.Second})
	stale := mustMount(t, m.dir, mounted.Options{Now: clk.now, Interval: 40 * time.Minute})
	rings := map[string]*Ring{"prompt": prompt, "stale": stale}

	info := []byte(InfoPasscode)
	aad := PasscodeAAD("dev", "jti")
	sealedTo := map[string]string{} // kid → a value sealed to it
	byKID := map[string]keyset.Key{}
	keys, err := KeysFromKeySet(&keyset.File{Purpose: keyset.PurposePayloadSealing, Keys: all})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if sealedTo[k.KID], err = Seal(k.Public(), info, aad, []byte("123456")); err != nil {
			t.Fatal(err)
		}
		byKID[k.KID] = all[i]
	}
	held := func(r *Ring) map[string]bool {
		out := map[string]bool{}
		for kid := range r.load().byKID {
			out[kid] = true
		}
		return out
	}

	cur := 0
	var staleSeen, aheadOpened, retiredHeld int
	for _, now := range instants {
		clk.set(now)
		for cur+1 < len(versions) && !versions[cur+1].at.After(now) {
			cur++
			m.update(file(versions[cur].keys))
		}
		docs := map[string][]byte{}
		listed := map[string]map[string]bool{}
		holds := map[string]map[string]bool{}
		for name, r := range rings {
			d, err := json.Marshal(r.Document())
			if err != nil {
				t.Fatal(err)
			}
			docs[name] = d
			listed[name] = map[string]bool{}
			for _, e := range r.Keys() {
				listed[name][e.KID] = true
			}
			holds[name] = held(r)
		}
		if !maps.Equal(holds["prompt"], kidSet(versions[cur].keys)) {
			t.Fatalf("%s: the prompt ring holds %v, not the file's %v", now, holds["prompt"], kidSet(versions[cur].keys))
		}
		if !slices.ContainsFunc(versions[:cur+1], func(v version) bool { return maps.Equal(holds["stale"], kidSet(v.keys)) }) {
			t.Fatalf("%s: the stale ring holds %v, no version written yet", now, holds["stale"])
		}
		if !maps.Equal(holds["prompt"], holds["stale"]) {
			staleSeen++
		}

		// Listed exactly when held and in the window: from not_before,
		// and not once retired.
		for name := range rings {
			for _, k := range all {
				want := holds[name][k.KID] && !now.Before(k.NotBefore) && !now.After(k.NotAfter)
				if listed[name][k.KID] != want {
					t.Fatalf("%s: %s ring lists %s: %v, want %v", now, name, k, listed[name][k.KID], want)
				}
			}
		}

		// Both hold every key either lists, so both publish the same.
		both := true
		for kid := range maps.Keys(listed["prompt"]) {
			both = both && holds["stale"][kid]
		}
		for kid := range maps.Keys(listed["stale"]) {
			both = both && holds["prompt"][kid]
		}
		if !both {
			t.Fatalf("%s: a replica lists a key the other does not hold (published %v ahead, the stale one re-reads every 40m)", now, publishAhead)
		}
		if string(docs["prompt"]) != string(docs["stale"]) {
			t.Fatalf("%s: documents differ:\nprompt %s\nstale  %s", now, docs["prompt"], docs["stale"])
		}

		// What either publishes opens at both: seal to the entries as
		// published.
		for name, r := range rings {
			for _, e := range r.Keys() {
				sealed, err := Seal(e, info, aad, []byte("654321"))
				if err != nil {
					t.Fatal(err)
				}
				for other, r2 := range rings {
					if pt, err := r2.Open(e.KID, sealed, info, aad, now); err != nil || string(pt) != "654321" {
						t.Fatalf("%s: sealed to %s as the %s ring publishes it, the %s ring: %q, %v", now, e.KID, name, other, pt, err)
					}
				}
			}
		}

		// Every key held opens until its not_after, also ahead of its
		// not_before; a retired key opens nowhere.
		for name, r := range rings {
			for kid, sealed := range sealedTo {
				k := byKID[kid]
				want := holds[name][kid] && !now.After(k.NotAfter)
				_, err := r.Open(kid, sealed, info, aad, now)
				if want != (err == nil) || (err != nil && !errors.Is(err, ErrUnknownKID)) {
					t.Fatalf("%s: %s ring opens %s: %v, want it to open: %v", now, name, k, err, want)
				}
				if want && now.Before(k.NotBefore) {
					aheadOpened++
				}
				if holds[name][kid] && now.After(k.NotAfter) {
					retiredHeld++
				}
			}
		}
	}
	t.Logf("%d instants: stale ring behind at %d, keys opened ahead of not_before %d times, retired keys held %d times",
		len(instants), staleSeen, aheadOpened, retiredHeld)
	if staleSeen == 0 || aheadOpened == 0 || retiredHeld == 0 {
		t.Fatalf("the scenario missed a case: stale ring behind %d times, key opened ahead %d, retired key held %d",
			staleSeen, aheadOpened, retiredHeld)
	}
}

// TestMountConcurrent opens and publishes from many goroutines while
// keys.json is rewritten (well-formed or half-written) and re-read; run
// with -race. The key in every version always opens and is listed.
func TestMountConcurrent(t *testing.T) {
	nb, na := testNow.Add(-time.Hour), testLater
	a := newKeySetKey(t, keyset.XWing, nb, na)
	x := newKeySetKey(t, keyset.X25519, nb, na)
	b := newKeySetKey(t, keyset.XWing, nb, na.Add(time.Hour))
	v1, v2 := sealingSet(t, a, x), sealingSet(t, a, x, b)
	clk := newClock(testNow)
	m := newKubeMount(t, v1)
	r := mustMount(t, m.dir, mounted.Options{Now: clk.now, Interval: time.Millisecond})
	keys, err := KeysFromKeySet(&keyset.File{Purpose: keyset.PurposePayloadSealing, Keys: []keyset.Key{a}})
	if err != nil {
		t.Fatal(err)
	}
	info, aad := []byte(InfoPasscode), PasscodeAAD("d", "j")
	sealed, err := Seal(keys[0].Public(), info, aad, []byte("123456"))
	if err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := r.Open(a.KID, sealed, info, aad, clk.now()); err != nil {
					t.Error(err)
					return
				}
				if kids := kidsOf(r.Keys()); !slices.Contains(kids, a.KID) || !slices.Contains(kids, x.KID) {
					t.Errorf("Keys = %v", kids)
					return
				}
				if doc := r.Document().(KeysDocument); len(doc.Keys) < 2 || r.MaxAge() != DefaultMaxAge {
					t.Errorf("Document = %+v, MaxAge %v", doc, r.MaxAge())
					return
				}
			}
		})
	}
	for i := range 60 {
		switch i % 3 {
		case 0:
			m.update(v2)
		case 1:
			m.overwrite(v1[:len(v1)/3])
		case 2:
			m.update(v1)
		}
		clk.advance(time.Millisecond)
		time.Sleep(time.Millisecond)
	}
	close(done)
	wg.Wait()
}
