package respserver

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/tidwall/redcon"
)

// Bounds of the SCAN cursor table.
const (
	maxCursors       = 4096             // cursors kept; the oldest goes first
	cursorTTL        = 10 * time.Minute // a cursor unused this long is dropped
	defaultScanCount = 10
)

// cursorTable maps SCAN cursors to the last key a scan returned. Redis
// clients treat a cursor as an integer (some parse it as one), so a
// cursor cannot carry the key itself: it is a random 63-bit number that
// names an entry here. Each cursor is used once: continuing a scan takes
// it out and puts a new one in. The table is shared by all connections
// (clients with connection pools continue a scan on another connection)
// and safe for concurrent use.
type cursorTable struct {
	max int
	ttl time.Duration

	mu sync.Mutex // guards the following
	m  map[uint64]cursorEntry
}

type cursorEntry struct {
	last    []byte    // the last key examined
	created time.Time // for expiry and eviction
}

func newCursorTable(max int, ttl time.Duration) cursorTable {
	return cursorTable{max: max, ttl: ttl, m: make(map[uint64]cursorEntry)}
}

// put stores last and returns its new cursor, never 0.
func (t *cursorTable) put(last []byte, now time.Time) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.max {
		t.evictLocked(now)
	}
	for {
		id := rand.Uint64() >> 1
		if _, taken := t.m[id]; id != 0 && !taken {
			t.m[id] = cursorEntry{last: last, created: now}
			return id
		}
	}
}

// take removes cursor id and returns its last key; ok is false for a
// cursor unknown, already used or expired.
func (t *cursorTable) take(id uint64, now time.Time) (last []byte, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[id]
	if !ok {
		return nil, false
	}
	delete(t.m, id)
	if now.Sub(e.created) > t.ttl {
		return nil, false
	}
	return e.last, true
}

// evictLocked drops the expired entries, and the oldest if none was.
func (t *cursorTable) evictLocked(now time.Time) {
	var oldest uint64
	var oldestAt time.Time
	dropped := false
	for id, e := range t.m {
		if now.Sub(e.created) > t.ttl {
			delete(t.m, id)
			dropped = true
			continue
		}
		if oldestAt.IsZero() || e.created.Before(oldestAt) {
			oldest, oldestAt = id, e.created
		}
	}
	if !dropped {
		delete(t.m, oldest)
	}
}

// scanPage is what one SCAN call found.
type scanPage struct {
	keys [][]byte
	last []byte // the last key examined, when more may follow
	more bool
}

// scanKeys examines up to count keys after last (all with count < 0) that
// start with the pattern's literal prefix, and returns those that match
// pattern (nil for every key).
func (s *Server) scanKeys(last, pattern []byte, count int) (scanPage, error) {
	var p scanPage
	prefix, all := globPrefix(pattern)
	if pattern == nil {
		all = true
	}
	if len(prefix) == 0 {
		prefix = nil
	}
	var start []byte
	if last != nil {
		start = append(last[:len(last):len(last)], 0) // the smallest key after last
	}
	examined := 0
	err := s.inst.Scan(start, prefix, func(k, _ []byte) bool {
		if count >= 0 && examined == count {
			p.more = true
			return false
		}
		examined++
		p.last = append(p.last[:0], k...)
		if all || globMatch(pattern, k) {
			p.keys = append(p.keys, append([]byte(nil), k...))
		}
		return true
	})
	return p, err
}

func (s *Server) scan(c redcon.Conn, _ *client, args [][]byte) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		c.WriteError("ERR invalid cursor")
		return
	}
	var pattern []byte
	count := defaultScanCount
	stringsOnly := true
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			c.WriteError(errSyntax)
			return
		}
		switch string(appendLower(nil, args[i])) {
		case "match":
			pattern = args[i+1]
		case "count":
			n, err := strconv.Atoi(string(args[i+1]))
			if err != nil {
				c.WriteError(errNotInt)
				return
			}
			if n < 1 {
				c.WriteError(errSyntax)
				return
			}
			count = n
		case "type":
			stringsOnly = string(appendLower(nil, args[i+1])) == "string"
		default:
			c.WriteError(errSyntax)
			return
		}
	}
	now := time.Now()
	var last []byte
	if cursor != 0 {
		var ok bool
		if last, ok = s.cursors.take(cursor, now); !ok {
			c.WriteError("ERR invalid cursor: " + string(args[1]) + " is unknown, already used or older than " + cursorTTL.String() + "; start again from 0")
			return
		}
	}
	if !stringsOnly { // every whycache value is a string
		c.WriteArray(2)
		c.WriteBulkString("0")
		c.WriteArray(0)
		return
	}
	p, err := s.scanKeys(last, pattern, count)
	if err != nil {
		c.WriteError(errorReply(err))
		return
	}
	next := "0"
	if p.more {
		next = strconv.FormatUint(s.cursors.put(p.last, now), 10)
	}
	c.WriteArray(2)
	c.WriteBulkString(next)
	c.WriteArray(len(p.keys))
	for _, k := range p.keys {
		c.WriteBulk(k)
	}
}

func (s *Server) keys(c redcon.Conn, _ *client, args [][]byte) {
	p, err := s.scanKeys(nil, args[1], -1)
	if err != nil {
		c.WriteError(errorReply(err))
		return
	}
	c.WriteArray(len(p.keys))
	for _, k := range p.keys {
		c.WriteBulk(k)
	}
}
