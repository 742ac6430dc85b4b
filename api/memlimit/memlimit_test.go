package memlimit

import (
	"runtime/debug"
	"strings"
	"testing"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLimit(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		want int64
	}{
		{"nothing set", nil, 0},
		{"512 MiB", map[string]string{Env: "536870912"}, 483183820},
		{"1 GiB with spaces", map[string]string{Env: " 1073741824\n"}, 966367641},
		{"GOMEMLIMIT wins", map[string]string{Env: "536870912", "GOMEMLIMIT": "400MiB"}, 0},
		{"exactly 16 MiB", map[string]string{Env: "16777216"}, 15099494},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Limit(env(c.env))
			if err != nil || got != c.want {
				t.Fatalf("Limit = %d, %v; want %d", got, err, c.want)
			}
		})
	}
}

func TestLimitRefuses(t *testing.T) {
	for _, raw := range []string{"512Mi", "512", "-536870912", "0", "5e8", "0x20000000", "536870912.5",
		"99999999999999999999999", strings.Repeat("9", 200), "536870912\x00", "１２３４５６７８９０"} {
		got, err := Limit(env(map[string]string{Env: raw}))
		if err == nil {
			t.Errorf("%q accepted as %d", raw, got)
			continue
		}
		if !strings.Contains(err.Error(), Env) || len(err.Error()) > 200 {
			t.Errorf("%q: unclear or unbounded error %q", raw, err)
		}
	}
}

func TestApply(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	set, err := Apply(env(map[string]string{Env: "1073741824"}))
	if err != nil || set != 966367641 {
		t.Fatalf("Apply = %d, %v", set, err)
	}
	if got := debug.SetMemoryLimit(-1); got != 966367641 {
		t.Errorf("the runtime's limit is %d", got)
	}
	// Nothing to apply leaves the runtime alone.
	if set, err := Apply(env(nil)); err != nil || set != 0 || debug.SetMemoryLimit(-1) != 966367641 {
		t.Errorf("Apply without a limit: %d, %v", set, err)
	}
	if _, err := Apply(env(map[string]string{Env: "lots"})); err == nil || debug.SetMemoryLimit(-1) != 966367641 {
		t.Errorf("a bad limit: %v", err)
	}
}
