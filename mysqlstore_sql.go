package whycache

import (
	"strings"

	"github.com/whycache/whycache/logstore"
)

// Sizes that bound what one statement may carry.
const (
	myMediumBlobMax  = 1<<24 - 1 // largest MEDIUMBLOB
	myMaxSingleKey   = 1024      // VARBINARY(1024)
	myStmtOverhead   = 4096      // SQL text, packet and parameter headers of one statement
	myRowOverhead    = 64        // per-row parameter headers, id, quotes and commas
	myLimitsDeadline = 5         // seconds Limits waits for the server
)

// myQueries holds the SQL texts of one store. The table name, validated
// by myValidTable, is the only thing ever formatted into them; every value
// is a placeholder argument.
type myQueries struct {
	bumpCounter   string // UPDATE meta: take ids, lock the counter row
	lockCounter   string // SELECT ... FOR UPDATE on the counter row
	replaceHead   string // REPLACE INTO log ... VALUES (rows follow)
	latest        string // next_id
	info          string // log_id, horizon
	initMeta      string // INSERT IGNORE the meta row
	maxID         string // highest id in the log table
	page          string // one page of records by id range
	raiseHorizon  string
	compactUpdate string // replace one record's contents if unchanged since read
	deleteHead    string // DELETE FROM log WHERE id IN (...)
	resetChunk    string // delete the lowest rows
	deleteAll     string
	newIdentity   string
}

// myNewQueries returns the SQL texts for table, which must be valid.
func myNewQueries(table string) myQueries {
	t := "`" + table + "`"
	m := "`" + table + "_meta`"
	return myQueries{
		bumpCounter:   "UPDATE " + m + " SET next_id = LAST_INSERT_ID(next_id + ?) WHERE one = 1",
		lockCounter:   "SELECT next_id FROM " + m + " WHERE one = 1 FOR UPDATE",
		replaceHead:   "REPLACE INTO " + t + " (id, single_key, contents) VALUES ",
		latest:        "SELECT next_id FROM " + m + " WHERE one = 1",
		info:          "SELECT log_id, horizon FROM " + m + " WHERE one = 1",
		initMeta:      "INSERT IGNORE INTO " + m + " (one, log_id, next_id, horizon) VALUES (1, ?, ?, 0)",
		maxID:         "SELECT COALESCE(MAX(id), 0) FROM " + t,
		page:          "SELECT id, contents FROM " + t + " WHERE id BETWEEN ? AND ? ORDER BY id LIMIT ?",
		raiseHorizon:  "UPDATE " + m + " SET horizon = GREATEST(horizon, ?) WHERE one = 1",
		compactUpdate: "UPDATE " + t + " SET contents = ? WHERE id = ? AND LENGTH(contents) = ? AND CRC32(contents) = ?",
		deleteHead:    "DELETE FROM " + t + " WHERE id IN (",
		resetChunk:    "DELETE FROM " + t + " ORDER BY id LIMIT ?",
		deleteAll:     "DELETE FROM " + t,
		newIdentity:   "UPDATE " + m + " SET log_id = ?, horizon = 0 WHERE one = 1",
	}
}

// myReplaceSQL returns the REPLACE statement for n rows.
func (q *myQueries) myReplaceSQL(n int) string {
	var b strings.Builder
	b.Grow(len(q.replaceHead) + 8*n)
	b.WriteString(q.replaceHead)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?)")
	}
	return b.String()
}

// myDeleteSQL returns a DELETE for n rows, each named by id and deleted
// only if its contents still have the length and CRC-32 read earlier (a
// row another compaction rewrote meanwhile stays).
func (q *myQueries) myDeleteSQL(n int) string {
	var b strings.Builder
	b.WriteString(q.deleteHead)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('?')
	}
	b.WriteString(") AND (id, LENGTH(contents), CRC32(contents)) IN (")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?)")
	}
	b.WriteByte(')')
	return b.String()
}

// myEscapedLen is the length of b as an escaped string literal, the form
// the driver sends with interpolateParams=true (binary parameters are
// never longer).
func myEscapedLen(b []byte) int {
	n := len(b)
	for _, c := range b {
		switch c {
		case 0, '\n', '\r', '\\', '\'', '"', 0x1a:
			n++
		}
	}
	return n
}

// myRowCost estimates the bytes one record adds to a REPLACE statement.
func myRowCost(key, contents []byte) int {
	return myRowOverhead + myEscapedLen(key) + myEscapedLen(contents)
}

// mySplit cuts rows with the given costs into consecutive chunks
// [start, end) of at most maxRows rows and maxBytes summed cost. A row
// whose cost alone exceeds maxBytes gets a chunk of its own.
func mySplit(costs []int, maxRows, maxBytes int) [][2]int {
	var out [][2]int
	start, sum := 0, 0
	for i, c := range costs {
		if i > start && (i-start >= maxRows || sum+c > maxBytes) {
			out = append(out, [2]int{start, i})
			start, sum = i, 0
		}
		sum += c
	}
	if start < len(costs) {
		out = append(out, [2]int{start, len(costs)})
	}
	return out
}

// myLimitsFor returns the limits for a server with the given
// max_allowed_packet: one record with the longest indexed key must fit in
// one statement, and in a MEDIUMBLOB.
func myLimitsFor(packet int) logstore.Limits {
	rec := min(packet-myStmtOverhead-myMaxSingleKey-myRowOverhead, myMediumBlobMax)
	return logstore.Limits{MaxRecordSize: max(rec, 0), MaxSingleKeySize: myMaxSingleKey}
}

// myStatementBudget is the summed row cost one statement may carry.
func (s *MySQLStore) myStatementBudget(packet int) int {
	b := packet - myStmtOverhead
	if s.opts.MaxStatementBytes > 0 {
		b = min(b, s.opts.MaxStatementBytes)
	}
	return max(b, 1)
}
