package whycache_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"

	_ "github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache"
)

// Sharing the MySQL table of Python whycache with Python processes: open
// the store in Python mode, read what Python wrote (pickles) through
// PickleCodec, and write values Python reads.
func ExampleNewMySQLStoreOptions_python() {
	dsn := os.Getenv("WHYCACHE_TEST_DSN") // e.g. user@tcp(db:3306)/cache
	if dsn == "" {
		return
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := whycache.NewMySQLStoreOptions(db, "whycache", whycache.MySQLStoreOptions{Format: whycache.FormatPython})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	cache, err := whycache.Open(store, whycache.Options{Name: "python-example"})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	ctx := context.Background()
	if err := cache.Update(ctx); err != nil { // every record Python committed, no hole skipped
		log.Fatal(err)
	}
	users := whycache.NewMap[map[string]any](cache, whycache.PickleCodec[map[string]any]{})
	if _, err := users.Set(ctx, []byte("user:42"), map[string]any{"name": "Ada", "admin": true}); err != nil {
		log.Fatal(err) // an empty value would be ErrNotRepresentable
	}
	u, err := users.Get([]byte("user:42"))
	fmt.Println(u["name"], err)
}
