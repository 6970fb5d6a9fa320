package main

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// counterNames are the server status variables the benchmark counts per
// client: the followers' are the global counts less the benchmark's own
// sessions'.
var counterNames = []string{"Questions", "Com_select", "Com_stmt_execute", "Com_stmt_prepare", "Com_stmt_close", "Com_insert", "Com_update"}

// cacheNames are the query cache's status variables: global only (a
// session shows the global figure), so they are counted for the whole
// server, the benchmark's own statements included (a few per second).
var cacheNames = []string{"Qcache_hits", "Qcache_inserts", "Qcache_not_cached", "Qcache_lowmem_prunes"}

// counters are status variables by name.
type counters map[string]int64

// readCounters reads the status variables names of scope ("GLOBAL" or
// "SESSION") on db. A pool of one connection reads its own session: the benchmark's
// pools each hold one connection so that their own statements can be taken
// out of the server's totals.
func readCounters(ctx context.Context, db *sql.DB, scope string, names []string) (counters, error) {
	q := "SHOW " + scope + " STATUS WHERE Variable_name IN ('" + strings.Join(names, "','") + "')"
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s status: %w", strings.ToLower(scope), err)
	}
	defer rows.Close()
	c := counters{}
	for rows.Next() {
		var name, val string
		if err := rows.Scan(&name, &val); err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("status %s = %q: %w", name, val, err)
		}
		c[name] = n
	}
	return c, rows.Err()
}

// sub returns c - o per variable.
func (c counters) sub(o counters) counters {
	d := counters{}
	for k, v := range c {
		d[k] = v - o[k]
	}
	return d
}

// connID returns the connection id of a pool of one connection; a change
// between two calls means the connection was replaced and its session
// counters restarted.
func connID(ctx context.Context, db *sql.DB) (int64, error) {
	var id int64
	err := db.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id)
	return id, err
}

// threadsConnected returns the server's Threads_connected.
func threadsConnected(ctx context.Context, db *sql.DB) (int64, error) {
	var name string
	var n int64
	err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Threads_connected'").Scan(&name, &n)
	return n, err
}

// serverSnapshot is a server's global counters and the sessions of the
// benchmark's own connections to it, taken together.
type serverSnapshot struct {
	global counters
	cache  counters   // cacheNames, global
	own    []counters // one per own pool, in the order given
	ids    []int64
}

// snapshotServer reads db's global counters and the session counters of
// every pool in own (db itself among them as the first, usually).
func snapshotServer(ctx context.Context, db *sql.DB, own []*sql.DB) (serverSnapshot, error) {
	var s serverSnapshot
	for _, o := range own {
		c, err := readCounters(ctx, o, "SESSION", counterNames)
		if err != nil {
			return s, err
		}
		id, err := connID(ctx, o)
		if err != nil {
			return s, err
		}
		s.own = append(s.own, c)
		s.ids = append(s.ids, id)
	}
	var err error
	if s.global, err = readCounters(ctx, db, "GLOBAL", counterNames); err != nil {
		return s, err
	}
	s.cache, err = readCounters(ctx, db, "GLOBAL", cacheNames)
	return s, err
}

// othersDelta returns the statements between two snapshots made by the
// server's other clients (the followers): the global delta less the own
// sessions' deltas. It fails when an own connection was replaced meanwhile.
func othersDelta(before, after serverSnapshot) (counters, error) {
	d := after.global.sub(before.global)
	for i := range before.own {
		if before.ids[i] != after.ids[i] {
			return nil, fmt.Errorf("a connection of the benchmark was replaced during the run (id %d, then %d): its statements cannot be told apart", before.ids[i], after.ids[i])
		}
		for k, v := range after.own[i].sub(before.own[i]) {
			d[k] -= v
		}
	}
	return d, nil
}

// connectionRoom fails when followers more connections would not fit in
// the server's max_connections beside the inUse ones (with a margin of 5
// for the benchmark's own and a stats sampler), so that a fleet does not
// take a shared server's last connections from its other clients.
func connectionRoom(maxConns, inUse int64, followers int) error {
	if need := inUse + int64(followers) + 5; need > maxConns {
		return fmt.Errorf("-followers %d: the server allows %d connections and %d are in use: run fewer followers, or -private (a server of its own with -max-connections)", followers, maxConns, inUse)
	}
	return nil
}

// checkRoom reads the server's max_connections and Threads_connected and
// applies connectionRoom.
func checkRoom(ctx context.Context, db *sql.DB, followers int) error {
	var maxConns int64
	if err := db.QueryRowContext(ctx, "SELECT @@max_connections").Scan(&maxConns); err != nil {
		return err
	}
	inUse, err := threadsConnected(ctx, db)
	if err != nil {
		return err
	}
	return connectionRoom(maxConns, inUse, followers)
}
