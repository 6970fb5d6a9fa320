package whycache_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/whycache/whycache"
)

// openExampleCache opens a filled cache on a file store in a temporary
// directory; close releases it.
func openExampleCache() (cache *whycache.Instance, close func()) {
	dir, _ := os.MkdirTemp("", "whycache-example")
	store, err := whycache.NewFileStore(filepath.Join(dir, "log"))
	if err != nil {
		log.Fatal(err)
	}
	cache, err = whycache.Open(store, whycache.Options{StatePath: filepath.Join(dir, "state")})
	if err != nil {
		log.Fatal(err)
	}
	if err := cache.Update(context.Background()); err != nil {
		log.Fatal(err)
	}
	return cache, func() { cache.Close(); store.Close(); os.RemoveAll(dir) }
}

// A read-through cache: the first call loads the value from the source of
// truth and stores it for a minute; the second finds it.
func ExampleInstance_GetOrLoad() {
	cache, done := openExampleCache()
	defer done()
	ctx := context.Background()
	loadUser := func(ctx context.Context) ([]byte, time.Duration, error) {
		fmt.Println("loading from the database")
		return []byte("alice"), time.Minute, nil
	}
	for i := 0; i < 2; i++ {
		v, err := cache.GetOrLoad(ctx, []byte("user:1"), loadUser)
		fmt.Println(string(v), err)
	}
	// Output:
	// loading from the database
	// alice <nil>
	// alice <nil>
}

// An item that expires: visible until its ttl passes, then not found.
func ExampleInstance_SetWithTTL() {
	cache, done := openExampleCache()
	defer done()
	ctx := context.Background()
	if _, err := cache.SetWithTTL(ctx, []byte("session"), []byte("token"), 100*time.Millisecond); err != nil {
		log.Fatal(err)
	}
	v, _, err := cache.GetWithExpiry([]byte("session"))
	fmt.Println(string(v), err)
	time.Sleep(150 * time.Millisecond)
	_, err = cache.Get([]byte("session"))
	fmt.Println(err)
	// Output:
	// token <nil>
	// whycache: key not found
}

// A transfer between two keys that readers see whole or not at all; a
// failing transaction leaves no trace.
func ExampleInstance_Txn() {
	cache, done := openExampleCache()
	defer done()
	ctx := context.Background()
	cache.Set(ctx, []byte("stock:a"), []byte("5"))
	_, err := cache.Txn(ctx, func(tx *whycache.Txn) error {
		if err := tx.Set([]byte("stock:a"), []byte("4")); err != nil {
			return err
		}
		return tx.Set([]byte("stock:b"), []byte("1"))
	})
	fmt.Println(err)
	_, err = cache.Txn(ctx, func(tx *whycache.Txn) error {
		tx.Delete([]byte("stock:a"))
		return errors.New("out of stock")
	})
	fmt.Println(err)
	for k, v := range cache.All() {
		fmt.Printf("%s=%s\n", k, v)
	}
	// Output:
	// <nil>
	// out of stock
	// stock:a=4
	// stock:b=1
}
