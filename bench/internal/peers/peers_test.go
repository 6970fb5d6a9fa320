package peers

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/whycache/whycache/bench/internal/workload"
)

// TestSystems runs every available system through a load, reads of
// present and missing keys, an overwrite, its footprint, and (for shared
// systems) a read from a second handle opened read-only.
func TestSystems(t *testing.T) {
	keys := workload.Keys(20)
	for _, sys := range All() {
		name := sys.Info().Name
		t.Run(name, func(t *testing.T) {
			if err := sys.Check(); err != nil {
				t.Skipf("not available here: %v", err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			env, stop, err := sys.Start(ctx, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := stop(); err != nil {
					t.Errorf("stop: %v", err)
				}
			}()
			c, err := sys.Open(env, ModeLoad)
			if err != nil {
				t.Fatal(err)
			}
			var b workload.Batch
			for i := range 10 {
				b.Add(workload.Key(keys, i), 0)
			}
			if err := c.Put(&b); err != nil {
				t.Fatal(err)
			}
			b.Reset()
			b.Add(workload.Key(keys, 3), 7)
			if err := c.Put(&b); err != nil {
				t.Fatal(err)
			}
			checkValue(t, c, workload.Key(keys, 0), 0)
			checkValue(t, c, workload.Key(keys, 3), 7)
			if v, found, err := c.Get([]byte("pre"), workload.Key(keys, 15)); err != nil || found || string(v) != "pre" {
				t.Errorf("Get(missing key) = %q, %v, %v; want \"pre\", false, nil", v, found, err)
			}
			if fp, ok := c.(Footprinter); ok {
				if n, err := fp.Footprint(); err != nil || n <= 0 {
					t.Errorf("Footprint() = %d, %v", n, err)
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if sys.Info().Sharing == PerProcess {
				return
			}
			r, err := sys.Open(env, ModeRead)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			checkValue(t, r, workload.Key(keys, 3), 7)
		})
	}
}

func checkValue(t *testing.T, c Conn, key []byte, version uint64) {
	t.Helper()
	want := make([]byte, workload.ValueLen)
	workload.FillValue(want, version)
	got, found, err := c.Get(make([]byte, 2, 8), key)
	if err != nil || !found || !bytes.Equal(got[2:], want) || len(got) != 2+workload.ValueLen {
		t.Errorf("Get = %d bytes, found=%v, err=%v; want the 2 bytes of dst then value version %d", len(got), found, err, version)
	}
}

func TestMissingError(t *testing.T) {
	err := error(&MissingError{System: "redis", What: "redis-server not in PATH", Packages: []string{"redis-server"}})
	if !errors.Is(err, ErrMissing) {
		t.Error("MissingError does not match ErrMissing")
	}
	if got, want := err.Error(), "redis: redis-server not in PATH (Debian: redis-server)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if err := needBinary("x", "no-such-binary-for-whycache-tests", "pkg"); !errors.Is(err, ErrMissing) {
		t.Errorf("needBinary of a missing binary: %v", err)
	}
}

func TestLookup(t *testing.T) {
	for _, s := range All() {
		got, ok := Lookup(s.Info().Name)
		if !ok || got.Info().Name != s.Info().Name {
			t.Errorf("Lookup(%q) = %v, %v", s.Info().Name, got, ok)
		}
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("Lookup of an unknown name succeeded")
	}
	if All()[0].Info().Name != "whycache" {
		t.Error("whycache is not first")
	}
}

func TestInfoField(t *testing.T) {
	info := "# Memory\r\nused_memory:12345\r\nused_memory_human:12.06K\r\n"
	if n, err := infoField(info, "used_memory"); err != nil || n != 12345 {
		t.Errorf("infoField = %d, %v", n, err)
	}
	if _, err := infoField(info, "absent"); err == nil {
		t.Error("infoField of an absent field: no error")
	}
}
