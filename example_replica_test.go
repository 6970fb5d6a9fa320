package whycache_test

import (
	"context"
	"database/sql"
	"log"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver of database/sql

	"github.com/whycache/whycache"
)

// A machine of a site that reads its site's replica and writes to the
// primary: polls go to the replica, Set to the primary. One machine of the
// fleet also writes heartbeats, so that every machine's Stats show how far
// its replica lags. Followers need one connection per server.
func ExampleNewMySQLStoreOptions() {
	primary, err := sql.Open("mysql", "cache@tcp(primary.db:3306)/cache")
	if err != nil {
		log.Print(err)
		return
	}
	replica, err := sql.Open("mysql", "cache@tcp(replica.site-a.db:3306)/cache")
	if err != nil {
		log.Print(err)
		return
	}
	for _, db := range []*sql.DB{primary, replica} {
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(3 * time.Second)
	}
	store, err := whycache.NewMySQLStoreOptions(primary, "whycache", whycache.MySQLStoreOptions{ReadDB: replica})
	if err != nil {
		log.Print(err)
		return
	}
	defer store.Close()
	cache, err := whycache.Open(store, whycache.Options{Name: "sessions"})
	if err != nil {
		log.Print(err)
		return
	}
	defer cache.Close()
	err = cache.Follow(context.Background(), whycache.FollowOptions{
		Interval:  time.Second,
		Heartbeat: true, // on one machine of the fleet
		OnPoll: func(st whycache.FollowStats, err error) {
			log.Printf("update id %d, replica lag %.1fs, lag %.1fs, err %v", st.UpdateID, st.ReadLagSeconds, st.LagSeconds, err)
		},
	})
	log.Print(err)
}
