package whycache_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/whycache/whycache"
)

// A follower daemon's main loop: Follow polls the log until its context
// ends; OnPoll sees every poll (a daemon exports these numbers as metrics).
func ExampleInstance_Follow() {
	dir, _ := os.MkdirTemp("", "whycache-example")
	defer os.RemoveAll(dir)
	store, err := whycache.NewFileStore(filepath.Join(dir, "log"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	// Another machine writes two keys.
	writer, err := whycache.Open(store, whycache.Options{StatePath: filepath.Join(dir, "writer.state")})
	if err != nil {
		log.Fatal(err)
	}
	defer writer.Close()
	if _, err := writer.SetMulti(context.Background(), []whycache.Item{
		{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte("2")},
	}); err != nil {
		log.Fatal(err)
	}

	cache, err := whycache.Open(store, whycache.Options{StatePath: filepath.Join(dir, "state")})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	ctx, stop := context.WithCancel(context.Background())
	err = cache.Follow(ctx, whycache.FollowOptions{
		Interval: 100 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnPoll: func(st whycache.FollowStats, err error) {
			fmt.Printf("leader %v, applied %d record(s), update id %d of %d, %d keys, error %v\n",
				st.Leader, st.Applied, st.UpdateID, st.LatestID, st.Keys, err)
			stop() // a daemon runs until SIGTERM instead
		},
	})
	fmt.Println(err)
	// Output:
	// leader true, applied 1 record(s), update id 1 of 1, 2 keys, error <nil>
	// context canceled
}
