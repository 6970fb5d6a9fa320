package whycache_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/whycache/whycache"
)

// A Go process reads a value as Python whycache stores it (the bytes of
// pickle.dumps) and stores one that Python's pickle.loads reads back.
func ExamplePickleCodec() {
	dir, _ := os.MkdirTemp("", "whycache-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, err := whycache.NewFileStore(filepath.Join(dir, "log"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	cache, err := whycache.Open(store, whycache.Options{StatePath: filepath.Join(dir, "state")})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	if err := cache.Update(ctx); err != nil {
		log.Fatal(err)
	}

	// pickle.dumps({'name': 'Ada', 'langs': ['en', 'fr'], 'born': 1815})
	// in Python 3.11 (protocol 4), stored under user:1.
	fromPython := []byte("\x80\x04\x952\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04name\x94\x8c\x03Ada\x94" +
		"\x8c\x05langs\x94]\x94(\x8c\x02en\x94\x8c\x02fr\x94e\x8c\x04born\x94M\x17\x07u.")
	if _, err := cache.Set(ctx, []byte("user:1"), fromPython); err != nil {
		log.Fatal(err)
	}

	users := whycache.NewMap(cache, whycache.PickleCodec[map[string]any]{})
	user, err := users.Get([]byte("user:1"))
	fmt.Println(user, err)
	fmt.Printf("%s was born in %d\n", user["name"], user["born"])

	// A pickle that does not fit the Go type is an error saying what it held.
	_, err = whycache.NewMap(cache, whycache.PickleCodec[int64]{}).Get([]byte("user:1"))
	fmt.Println(err)

	// Go writes protocol 4; Python's pickle.loads gives ['go', 1].
	lists := whycache.NewMap(cache, whycache.PickleCodec[[]any]{})
	if _, err := lists.Set(ctx, []byte("from-go"), []any{"go", 1}); err != nil {
		log.Fatal(err)
	}
	raw, _ := cache.Get([]byte("from-go"))
	fmt.Printf("%q\n", raw)
	// Output:
	// map[born:1815 langs:[en fr] name:Ada] <nil>
	// Ada was born in 1815
	// whycache: corrupt data: decode value of "user:1": pickle: value: the pickle holds a dict of 3 items, which does not fit Go type int64
	// "\x80\x04(\x8c\x02goK\x01l."
}
