package passcode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func testPepper(id string, b byte) Pepper {
	return Pepper{ID: id, Key: bytes.Repeat([]byte{b}, 32)}
}

func newTestHasher(t testing.TB, o Options) *Hasher {
	t.Helper()
	if o.Params == (Params{}) {
		o.Params = TestParams
	}
	if o.Peppers == nil {
		o.Peppers = []Pepper{testPepper("p2", 2), testPepper("p1", 1)}
	}
	h, err := NewHasher(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func acquire(t testing.TB, h *Hasher) *Slot {
	t.Helper()
	s, err := h.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Release)
	return s
}

func mustNew(t testing.TB, s *Slot, pc string) Verifier {
	t.Helper()
	v, err := s.New([]byte(pc))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRoundTrip(t *testing.T) {
	h := newTestHasher(t, Options{})
	s := acquire(t, h)
	v := mustNew(t, s, "123456")
	if !strings.HasPrefix(v.PHC, "$argon2id$v=19$m=64,t=1,p=1$") || v.PepperID != "p2" {
		t.Fatalf("unexpected verifier %q / %q", v.PHC, v.PepperID)
	}
	ph, err := defaultLimits.parsePHC(v.PHC)
	if err != nil {
		t.Fatal(err)
	}
	if len(ph.salt) != 16 || len(ph.hash) != 32 {
		t.Fatalf("salt %d bytes, hash %d bytes", len(ph.salt), len(ph.hash))
	}
	if ph.encode() != v.PHC {
		t.Fatal("encode(parse(phc)) != phc")
	}
	ok, err := s.Verify(v, []byte("123456"))
	if err != nil || !ok {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
	if h.NeedsRehash(v) {
		t.Fatal("fresh verifier needs rehash")
	}
	// Several hashes on one slot, and a fresh salt every time.
	v2 := mustNew(t, s, "123456")
	if v2.PHC == v.PHC {
		t.Fatal("two verifiers of the same passcode are equal: salt not fresh")
	}
}

func TestWrongPasscode(t *testing.T) {
	h := newTestHasher(t, Options{})
	s := acquire(t, h)
	v := mustNew(t, s, "123456")
	for _, guess := range []string{"123457", "654321", "", "1234567", "12345", "123456\x00"} {
		ok, err := s.Verify(v, []byte(guess))
		if err != nil || ok {
			t.Errorf("Verify(%q) = %v, %v; want false, nil", guess, ok, err)
		}
	}
}

// The pepper is really mixed in: the same PHC under another pepper with
// the same id does not verify.
func TestPepperMatters(t *testing.T) {
	h1 := newTestHasher(t, Options{Peppers: []Pepper{testPepper("p", 1)}})
	h2 := newTestHasher(t, Options{Peppers: []Pepper{testPepper("p", 9)}})
	v := mustNew(t, acquire(t, h1), "123456")
	ok, err := acquire(t, h2).Verify(v, []byte("123456"))
	if err != nil || ok {
		t.Fatalf("verified under another pepper key: %v, %v", ok, err)
	}
}

func TestOldPepperAndRehash(t *testing.T) {
	old := newTestHasher(t, Options{Peppers: []Pepper{testPepper("p1", 1)}})
	v := mustNew(t, acquire(t, old), "246810")

	// Rotated: p2 is current, p1 still accepted.
	h := newTestHasher(t, Options{Peppers: []Pepper{testPepper("p2", 2), testPepper("p1", 1)}})
	s := acquire(t, h)
	ok, err := s.Verify(v, []byte("246810"))
	if err != nil || !ok {
		t.Fatalf("old-pepper Verify = %v, %v", ok, err)
	}
	if !h.NeedsRehash(v) {
		t.Fatal("old-pepper verifier: NeedsRehash false")
	}
	// Rehash on the same slot, after which it is current.
	nv := mustNew(t, s, "246810")
	if nv.PepperID != "p2" || h.NeedsRehash(nv) {
		t.Fatalf("rehashed verifier %v still needs rehash", nv)
	}
	if ok, err := s.Verify(nv, []byte("246810")); err != nil || !ok {
		t.Fatalf("rehashed Verify = %v, %v", ok, err)
	}
}

func TestNeedsRehashParams(t *testing.T) {
	cheap := newTestHasher(t, Options{Params: Params{Memory: 32, Time: 1, Threads: 1, KeyLen: 32}})
	v := mustNew(t, acquire(t, cheap), "111111")
	h := newTestHasher(t, Options{}) // TestParams, same peppers
	if !h.NeedsRehash(v) {
		t.Fatal("verifier with other params: NeedsRehash false")
	}
	// Old params still verify.
	if ok, err := acquire(t, h).Verify(v, []byte("111111")); err != nil || !ok {
		t.Fatalf("old-params Verify = %v, %v", ok, err)
	}
	for _, p := range []Params{
		{Memory: 64, Time: 2, Threads: 1, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 2, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, KeyLen: 16},
	} {
		o := newTestHasher(t, Options{Params: p})
		if !h.NeedsRehash(mustNew(t, acquire(t, o), "111111")) {
			t.Errorf("params %v: NeedsRehash false", p)
		}
	}
	if !h.NeedsRehash(Verifier{PHC: "garbage", PepperID: "p2"}) {
		t.Error("malformed verifier: NeedsRehash false")
	}
}

func TestUnknownPepper(t *testing.T) {
	h := newTestHasher(t, Options{})
	s := acquire(t, h)
	v := mustNew(t, s, "123456")
	for _, id := range []string{"p3", "", "P2", "p2 "} {
		v.PepperID = id
		ok, err := s.Verify(v, []byte("123456"))
		if ok || !errors.Is(err, ErrUnknownPepper) {
			t.Errorf("pepper id %q: Verify = %v, %v; want ErrUnknownPepper", id, ok, err)
		}
	}
}

func TestMalformedPHC(t *testing.T) {
	h := newTestHasher(t, Options{})
	s := acquire(t, h)
	good := mustNew(t, s, "123456")
	parts := strings.Split(good.PHC, "$") // "", argon2id, v=19, m=..., salt, hash
	salt, hash := parts[4], parts[5]
	join := func(p ...string) string { return strings.Join(p, "$") }
	b64of := func(n int) string { return b64.EncodeToString(bytes.Repeat([]byte{7}, n)) }

	cases := map[string]string{
		"empty":                 "",
		"just dollars":          "$$$$$",
		"argon2i":               join("", "argon2i", "v=19", "m=64,t=1,p=1", salt, hash),
		"argon2d":               join("", "argon2d", "v=19", "m=64,t=1,p=1", salt, hash),
		"bcrypt":                "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"upper-case algorithm":  join("", "ARGON2ID", "v=19", "m=64,t=1,p=1", salt, hash),
		"no leading $":          join("argon2id", "v=19", "m=64,t=1,p=1", salt, hash),
		"missing version":       join("", "argon2id", "m=64,t=1,p=1", salt, hash),
		"version 16":            join("", "argon2id", "v=16", "m=64,t=1,p=1", salt, hash),
		"version 019":           join("", "argon2id", "v=019", "m=64,t=1,p=1", salt, hash),
		"missing params":        join("", "argon2id", "v=19", salt, hash),
		"missing hash":          join("", "argon2id", "v=19", "m=64,t=1,p=1", salt),
		"empty hash":            join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, ""),
		"empty salt":            join("", "argon2id", "v=19", "m=64,t=1,p=1", "", hash),
		"extra segment":         join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, hash, ""),
		"extra segment 2":       join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, hash, hash),
		"trailing newline":      good.PHC + "\n",
		"params reordered":      join("", "argon2id", "v=19", "t=1,m=64,p=1", salt, hash),
		"param missing":         join("", "argon2id", "v=19", "m=64,t=1", salt, hash),
		"extra param":           join("", "argon2id", "v=19", "m=64,t=1,p=1,keyid=x", salt, hash),
		"param spaces":          join("", "argon2id", "v=19", "m=64, t=1, p=1", salt, hash),
		"param sign":            join("", "argon2id", "v=19", "m=+64,t=1,p=1", salt, hash),
		"param negative":        join("", "argon2id", "v=19", "m=64,t=-1,p=1", salt, hash),
		"param leading zero":    join("", "argon2id", "v=19", "m=064,t=1,p=1", salt, hash),
		"param hex":             join("", "argon2id", "v=19", "m=0x40,t=1,p=1", salt, hash),
		"param empty":           join("", "argon2id", "v=19", "m=,t=1,p=1", salt, hash),
		"param overflow u32":    join("", "argon2id", "v=19", "m=4294967296,t=1,p=1", salt, hash),
		"param huge":            join("", "argon2id", "v=19", "m=99999999999999999999,t=1,p=1", salt, hash),
		"memory > 1 GiB":        join("", "argon2id", "v=19", "m=1048577,t=1,p=1", salt, hash),
		"memory max u32":        join("", "argon2id", "v=19", "m=4294967295,t=1,p=1", salt, hash),
		"memory < 8p":           join("", "argon2id", "v=19", "m=15,t=1,p=2", salt, hash),
		"memory zero":           join("", "argon2id", "v=19", "m=0,t=1,p=1", salt, hash),
		"time > 10":             join("", "argon2id", "v=19", "m=64,t=11,p=1", salt, hash),
		"time max u32":          join("", "argon2id", "v=19", "m=64,t=4294967295,p=1", salt, hash),
		"time zero":             join("", "argon2id", "v=19", "m=64,t=0,p=1", salt, hash),
		"threads > 16":          join("", "argon2id", "v=19", "m=1024,t=1,p=17", salt, hash),
		"threads 256 (u8 wrap)": join("", "argon2id", "v=19", "m=64,t=1,p=256", salt, hash),
		"threads 257 (u8 wrap)": join("", "argon2id", "v=19", "m=64,t=1,p=257", salt, hash),
		"threads zero":          join("", "argon2id", "v=19", "m=64,t=1,p=0", salt, hash),
		"salt 15 bytes":         join("", "argon2id", "v=19", "m=64,t=1,p=1", b64of(15), hash),
		"salt 8 bytes":          join("", "argon2id", "v=19", "m=64,t=1,p=1", b64of(8), hash),
		"salt 65 bytes":         join("", "argon2id", "v=19", "m=64,t=1,p=1", b64of(65), hash),
		"hash 15 bytes":         join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, b64of(15)),
		"hash 65 bytes":         join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, b64of(65)),
		"salt bad base64":       join("", "argon2id", "v=19", "m=64,t=1,p=1", "!!!!"+salt[4:], hash),
		"hash bad base64":       join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, "%%%%"+hash[4:]),
		"salt padded":           join("", "argon2id", "v=19", "m=64,t=1,p=1", salt+"==", hash),
		"hash padded":           join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, hash+"="),
		"salt url alphabet":     join("", "argon2id", "v=19", "m=64,t=1,p=1", "-_"+salt[2:], hash),
		// 32 bytes are 43 characters whose last carries 2 unused bits, zero
		// in canonical form; 'B' (000001) sets one.
		"hash non-canonical end": join("", "argon2id", "v=19", "m=64,t=1,p=1", salt, hash[:len(hash)-1]+"B"),
		"salt with newline":      join("", "argon2id", "v=19", "m=64,t=1,p=1", salt[:4]+"\n"+salt[4:], hash),
		"too long":               good.PHC + strings.Repeat("A", 300),
		"nul":                    join("", "argon2id\x00", "v=19", "m=64,t=1,p=1", salt, hash),
	}
	for name, phc := range cases {
		t.Run(name, func(t *testing.T) {
			ok, err := s.Verify(Verifier{PHC: phc, PepperID: "p2"}, []byte("123456"))
			if ok || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Verify = %v, %v; want ErrMalformed", ok, err)
			}
			if len(phc) > 8 && strings.Contains(err.Error(), phc) || strings.Contains(err.Error(), salt) {
				t.Fatalf("error %q echoes its input", err)
			}
		})
	}
	// The good one still verifies (the table did not pass by accident).
	if ok, err := s.Verify(good, []byte("123456")); err != nil || !ok {
		t.Fatalf("good Verify = %v, %v", ok, err)
	}
}

func TestSlotReleased(t *testing.T) {
	h := newTestHasher(t, Options{Workers: 1})
	s, err := h.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, s, "123456")
	s.Release()
	s.Release() // idempotent: must not free a second worker
	if st := h.Stats(); st.Busy != 0 {
		t.Fatalf("Busy = %d after Release", st.Busy)
	}
	if _, err := s.New([]byte("123456")); !errors.Is(err, ErrSlotReleased) {
		t.Fatalf("New after Release: %v", err)
	}
	if _, err := s.Verify(v, []byte("123456")); !errors.Is(err, ErrSlotReleased) {
		t.Fatalf("Verify after Release: %v", err)
	}
	// The pool still has exactly one worker.
	s1 := acquire(t, h)
	h.queue = 0
	if _, err := h.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Acquire with Workers=1: %v", err)
	}
	s1.Release()
}

func TestNewHasherValidation(t *testing.T) {
	ok := []Pepper{testPepper("p", 1)}
	bad := map[string]Options{
		"no peppers":      {Params: TestParams},
		"short key":       {Params: TestParams, Peppers: []Pepper{{ID: "p", Key: make([]byte, 31)}}},
		"zero key":        {Params: TestParams, Peppers: []Pepper{{ID: "p", Key: make([]byte, 32)}}},
		"empty id":        {Params: TestParams, Peppers: []Pepper{testPepper("", 1)}},
		"id with $":       {Params: TestParams, Peppers: []Pepper{testPepper("a$b", 1)}},
		"id with space":   {Params: TestParams, Peppers: []Pepper{testPepper("a b", 1)}},
		"id too long":     {Params: TestParams, Peppers: []Pepper{testPepper(strings.Repeat("a", 65), 1)}},
		"duplicate id":    {Params: TestParams, Peppers: []Pepper{testPepper("p", 1), testPepper("p", 2)}},
		"time 0":          {Params: Params{Memory: 64, Time: 0, Threads: 1, KeyLen: 32}, Peppers: ok},
		"time 11":         {Params: Params{Memory: 64, Time: 11, Threads: 1, KeyLen: 32}, Peppers: ok},
		"threads 0":       {Params: Params{Memory: 64, Time: 1, Threads: 0, KeyLen: 32}, Peppers: ok},
		"threads 17":      {Params: Params{Memory: 1024, Time: 1, Threads: 17, KeyLen: 32}, Peppers: ok},
		"memory < 8p":     {Params: Params{Memory: 7, Time: 1, Threads: 1, KeyLen: 32}, Peppers: ok},
		"memory > 1 GiB":  {Params: Params{Memory: 1<<20 + 1, Time: 1, Threads: 1, KeyLen: 32}, Peppers: ok},
		"key len 15":      {Params: Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 15}, Peppers: ok},
		"key len 65":      {Params: Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 65}, Peppers: ok},
		"negative wait":   {Params: TestParams, Peppers: ok, MaxWait: -1},
		"partial params":  {Params: Params{Memory: 64}, Peppers: ok},
		"secret in error": {Params: TestParams, Peppers: []Pepper{{ID: "p", Key: []byte("short-secret-key")}}},
	}
	for name, o := range bad {
		if _, err := NewHasher(o); err == nil {
			t.Errorf("%s: NewHasher succeeded", name)
		} else if strings.Contains(err.Error(), "short-secret-key") {
			t.Errorf("%s: error leaks the key: %v", name, err)
		}
	}
	h, err := NewHasher(Options{Peppers: ok})
	if err != nil {
		t.Fatal(err)
	}
	if h.params != DefaultParams || h.maxWait.Seconds() != 2 || h.workers < 1 || h.queue != int64(4*h.workers) {
		t.Fatalf("defaults: params %v, maxWait %v, workers %d, queue %d", h.params, h.maxWait, h.workers, h.queue)
	}
	if h, _ := NewHasher(Options{Peppers: ok, Queue: -1}); h.queue != 0 {
		t.Fatalf("Queue -1: queue %d", h.queue)
	}
	// Keys are copied: wiping the caller's slice does not change the hasher.
	key := bytes.Repeat([]byte{5}, 32)
	h1 := newTestHasher(t, Options{Peppers: []Pepper{{ID: "p", Key: key}}})
	v := mustNew(t, acquire(t, h1), "123456")
	clear(key)
	if ok, err := acquire(t, h1).Verify(v, []byte("123456")); err != nil || !ok {
		t.Fatalf("after wiping caller's key: %v, %v", ok, err)
	}
}

// Neither the pepper key nor the PHC string (salt, hash) may show up in
// any fmt verb, slog output or JSON.
func TestRedaction(t *testing.T) {
	key := []byte("0123456789abcdef0123456789ABCDEF-pepper")
	pep := Pepper{ID: "pep-1", Key: key}
	h := newTestHasher(t, Options{Peppers: []Pepper{pep}})
	v := mustNew(t, acquire(t, h), "123456")
	parts := strings.Split(v.PHC, "$")
	secrets := []string{string(key), fmt.Sprintf("%x", key), fmt.Sprint([]byte(key)), v.PHC, parts[4], parts[5], "argon2id"}

	type wrapper struct {
		V Verifier
		P Pepper
		Q *Pepper
	}
	values := []any{pep, &pep, v, &v, wrapper{v, pep, &pep}, []Verifier{v}, map[string]Pepper{"k": pep}}
	var outs []string
	for _, x := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
			outs = append(outs, fmt.Sprintf(verb, x))
		}
		outs = append(outs, fmt.Sprint(x), fmt.Sprintln(x))
	}
	var buf bytes.Buffer
	for _, hd := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(hd)
		l.Info("x", "verifier", v, "pepper", pep, "pp", &pep, "pv", &v)
		l.Info("y", slog.Any("w", wrapper{v, pep, &pep}))
	}
	outs = append(outs, buf.String())
	j, err := json.Marshal(wrapper{v, pep, &pep})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	for _, out := range outs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("output leaks a secret:\n%s", out)
			}
		}
	}
	if !strings.Contains(v.String(), `"pep-1"`) || !strings.Contains(pep.String(), `"pep-1"`) {
		t.Errorf("ids should stay visible: %s / %s", v, pep)
	}
	t.Logf("Verifier: %v\nPepper: %v\nslog: %s", v, pep, buf.String())
}
