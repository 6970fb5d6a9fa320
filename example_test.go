package whycache_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/whycache/whycache"
	"github.com/whycache/whycache/logstore"
)

// A cache on the file store: commit a write, read it back, iterate.
func ExampleOpen() {
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

	// Fill the state from the log once (a follower daemon does this).
	if err := cache.Update(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := cache.Set(ctx, []byte("greeting"), []byte("hello")); err != nil {
		log.Fatal(err)
	}
	v, err := cache.Get([]byte("greeting"))
	fmt.Println(string(v), err)
	_, err = cache.Get([]byte("missing"))
	fmt.Println(err)
	// Output:
	// hello <nil>
	// whycache: key not found
}

// Two machines share one log: the second sees the first's writes after
// Update.
func ExampleInstance_Update() {
	dir, _ := os.MkdirTemp("", "whycache-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, _ := whycache.NewFileStore(filepath.Join(dir, "log"))
	defer store.Close()
	a, _ := whycache.Open(store, whycache.Options{StatePath: filepath.Join(dir, "machine-a")})
	b, _ := whycache.Open(store, whycache.Options{StatePath: filepath.Join(dir, "machine-b")})
	defer a.Close()
	defer b.Close()
	a.Update(ctx)
	a.SetMulti(ctx, []whycache.Item{{Key: []byte("x"), Value: []byte("1")}, {Key: []byte("y"), Value: []byte("2")}})

	b.Update(ctx)
	for k, v := range b.All() {
		fmt.Printf("%s=%s\n", k, v)
	}
	fmt.Println(a.UpdateID() <= b.UpdateID())
	// Output:
	// x=1
	// y=2
	// true
}

// Snapshots let a new machine start without replaying the log.
func ExampleInstance_WriteSnapshot() {
	dir, _ := os.MkdirTemp("", "whycache-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, _ := whycache.NewFileStore(filepath.Join(dir, "log"))
	defer store.Close()
	old, _ := whycache.Open(store, whycache.Options{StatePath: filepath.Join(dir, "old")})
	defer old.Close()
	old.Update(ctx)
	old.Set(ctx, []byte("k"), []byte("v"))
	old.Update(ctx)

	var snap bytes.Buffer
	id, _ := old.WriteSnapshot(&snap)

	fresh, _ := whycache.Open(store, whycache.Options{StatePath: filepath.Join(dir, "fresh")})
	defer fresh.Close()
	if err := fresh.LoadSnapshot(ctx, &snap); err != nil {
		log.Fatal(err)
	}
	v, _ := fresh.Get([]byte("k"))
	fmt.Println(string(v), fresh.UpdateID() == id)
	// Output: v true
}

// A typed view stores JSON values.
func ExampleNewMap() {
	dir, _ := os.MkdirTemp("", "whycache-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, _ := whycache.NewFileStore(filepath.Join(dir, "log"))
	defer store.Close()
	cache, _ := whycache.Open(store, whycache.Options{StatePath: filepath.Join(dir, "state")})
	defer cache.Close()
	cache.Update(ctx)

	type User struct {
		Name string
		Age  int
	}
	users := whycache.NewMap[User](cache, whycache.JSONCodec[User]{})
	users.Set(ctx, []byte("u1"), User{"Ada", 36})
	u, err := users.Get([]byte("u1"))
	fmt.Println(u.Name, u.Age, err)
	// Output: Ada 36 <nil>
}

// ExampleNewFileStore commits a batch to a file store and reads it back.
func ExampleNewFileStore() {
	dir, err := os.MkdirTemp("", "whycache-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	store, err := whycache.NewFileStore(filepath.Join(dir, "log"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	ctx := context.Background()
	res, err := store.Commit(ctx, logstore.LogID{}, []logstore.Record{{Contents: []byte("first")}, {Contents: []byte("second")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	last := res.Last
	fmt.Println("committed up to id", last)
	err = store.ReadUpdates(ctx, 1, last, func(id uint64, contents []byte) error {
		fmt.Printf("%d: %s\n", id, contents)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// committed up to id 2
	// 1: first
	// 2: second
}
