package mysqlstore

import (
	"strconv"
	"strings"

	"github.com/whycache/whycache/logstore"
)

// Sizes that bound what one statement may carry.
const (
	mediumBlobMax  = 1<<24 - 1 // largest MEDIUMBLOB
	maxSingleKey   = 1024      // VARBINARY(1024)
	stmtOverhead   = 4096      // SQL text, packet and parameter headers of one statement
	rowOverhead    = 96        // per-row parameter headers, id, nonce, quotes and commas
	limitsDeadline = 5         // seconds Limits waits for the server
)

// queries holds the SQL texts of one store. The table name, validated
// by validTable, is the only thing ever formatted into them; every value
// is a placeholder argument.
type queries struct {
	bumpCounter       string // UPDATE meta: take ids, set the latest nonce and time, lock the counter row
	bumpCounterExpect string // bumpCounter only if log_id is the expected identity
	insertMark        string // INSERT the commit's mark, copied from the meta row it just set
	lockCounter       string // SELECT ... FOR UPDATE on the counter row
	lockLatest        string // the counter row's latest position, locking the row
	replaceHead       string // REPLACE INTO log ... VALUES (rows follow)
	latest            string // next_id
	info              string // log_id, horizon
	identity          string // log_id, next_id
	pollJoin          string // one Poll as one join: the position's row and the records after it, each with the meta row
	pollFull          string // one Poll as a UNION: the meta row, the lowest mark at or above the position, the rows from it on
	heartbeat         string // UPDATE meta: heartbeat_us = the server's clock
	serverClock       string // the server's clock
	createMeta        string // INSERT the meta row
	maxID             string // highest id in the log table
	maxMark           string // highest id in the marks table
	firstContents     string // contents of the lowest row
	page              string // one page of records by id range
	checkPage         string // one page of rows with every column, for Check
	marksPage         string // one page of marks, for Check
	meta              string // the whole meta row, for Check
	raiseHorizon      string
	pruneMarks        string // delete the lowest marks below a bound
	compactUpdate     string // replace one record's contents if unchanged since read
	deleteHead        string // DELETE FROM log WHERE id IN (...)
	resetChunk        string // delete the lowest rows
	resetMarksChunk   string // delete the lowest marks
	deleteAll         string
	deleteAllMarks    string
	newIdentity       string
}

// commitTimeSQL is the server's clock in microseconds since 1970 UTC
// (UTC_TIMESTAMP is the statement's start time, which statement-based
// replication carries to replicas).
const commitTimeSQL = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"

// Row kinds of the Poll statement (its first column).
const (
	pollKindMeta   = 0 // the meta row: next_id, latest_nonce, horizon, latest_us, log_id, heartbeat_us, the nonce of the mark at next_id - 1 (0 if none)
	pollKindMark   = 2 // the lowest mark at or above the position: last_id, nonce
	pollKindRecord = 3 // a log row from the position on: id, nonce, contents
)

// newQueries returns the SQL texts for table, which must be valid.
func newQueries(table string) queries {
	t := "`" + table + "`"
	m := "`" + table + "_meta`"
	k := "`" + table + "_marks`"
	bump := "UPDATE " + m + " SET next_id = LAST_INSERT_ID(next_id + ?), latest_nonce = ?, latest_us = " + commitTimeSQL + " WHERE one = 1"
	return queries{
		bumpCounter:       bump,
		bumpCounterExpect: bump + " AND log_id = ?",
		insertMark:        "INSERT INTO " + k + " (last_id, nonce, commit_us) SELECT next_id - 1, latest_nonce, latest_us FROM " + m + " WHERE one = 1",
		lockCounter:       "SELECT next_id FROM " + m + " WHERE one = 1 FOR UPDATE",
		lockLatest:        "SELECT next_id, latest_nonce FROM " + m + " WHERE one = 1 FOR UPDATE",
		replaceHead:       "REPLACE INTO " + t + " (id, single_key, contents, nonce) VALUES ",
		latest:            "SELECT next_id FROM " + m + " WHERE one = 1",
		info:              "SELECT log_id, horizon FROM " + m + " WHERE one = 1",
		identity:          "SELECT log_id, next_id FROM " + m + " WHERE one = 1",
		// A Poll is one statement, so one InnoDB read view, of one of two
		// shapes (pollQuery chooses). pollJoin, the cheapest for the
		// server, is one SELECT block: the meta row (identity, horizon,
		// latest position and time, the last heartbeat the view holds) and
		// the nonce of the mark at the latest id (the latest nonce holds
		// only if it is that mark's), both constant, joined to the range of log rows in id order from the
		// position on: each row is a log row with the meta columns in
		// front; the position's own row (when compaction left it) is the
		// trace the verdict needs, its contents left out. It returns
		// nothing when no log row lies between the position and next_id.
		// Arguments: position, position, limit + rows before the records.
		//
		// pollFull is the same as a UNION ALL of three branches, which
		// always returns the meta row: the meta row, the lowest mark at or
		// above the position, the log rows from the first id on. pollQuery
		// runs it where pollJoin returned nothing or compaction removed
		// the position's row. Arguments: position, position, first id,
		// limit + rows before the records.
		//
		// Neither reads the server's clock or anything else that changes
		// without a write to the three tables: a server with the query
		// cache on then answers the followers that ask the same question
		// (the same position, as a fleet's do between two commits) from
		// the cache, until a commit invalidates it (see readTime for the
		// clock).
		//
		// No subquery: MariaDB optimises a prepared statement again at
		// every execution, and the cost grows with the branches (six
		// branches and four subqueries at first, then pollFull in every
		// poll; sending the statement as text with the values in it costs
		// more than the prepared one). A Poll returns what it did with
		// those, because:
		//   - in one view no row or mark has an id at or above next_id: a
		//     commit takes its ids from next_id and advances it in the
		//     transaction that inserts its rows and its mark; compaction
		//     rewrites or deletes rows below next_id only; Reset deletes
		//     rows and marks and keeps next_id; CreateTable sets next_id
		//     above the highest id of both tables;
		//   - so the highest mark is the latest commit's exactly when a
		//     mark at next_id - 1 exists: a point lookup joined to the
		//     meta row (GREATEST keeps a damaged next_id of 0 from
		//     failing the statement; pollQuery reports it);
		//   - pollFull's records branch needs no id < next_id bound;
		//     pollRead drops rows at or above next_id all the same, and as
		//     the rows come in id order the ones below are a prefix of the
		//     result, the rows the bound returned;
		//   - the trace of a position is the lowest row or mark at or
		//     above it; a row at the position itself is that lowest one,
		//     so the marks are needed only when compaction removed the
		//     position's row;
		//   - the lookups of the position's trace are kept only when
		//     position + 1 < next_id (pollRead), where the statements
		//     returned them before; above, Judge does not use them.
		pollJoin: "SELECT m.next_id, m.latest_nonce, m.horizon, m.latest_us, m.log_id, m.heartbeat_us, COALESCE(k.nonce, 0), t.id, t.nonce, IF(t.id > ?, t.contents, NULL)" +
			" FROM " + m + " m JOIN " + t + " t ON t.id >= ? AND t.id < m.next_id LEFT JOIN " + k + " k ON k.last_id = GREATEST(m.next_id, 1) - 1" +
			" WHERE m.one = 1 ORDER BY t.id LIMIT ?",
		pollFull: "SELECT " + itoa(pollKindMeta) + ", m.next_id, m.latest_nonce, m.horizon, m.latest_us, m.log_id, m.heartbeat_us, COALESCE(k.nonce, 0)" +
			" FROM " + m + " m LEFT JOIN " + k + " k ON k.last_id = GREATEST(m.next_id, 1) - 1 WHERE m.one = 1" +
			" UNION ALL (SELECT " + itoa(pollKindMark) + ", last_id, nonce, " + sqlZero + ", " + sqlZero + ", NULL, " + sqlZero + ", " + sqlZero + " FROM " + k +
			" WHERE last_id >= ? ORDER BY last_id LIMIT 1)" +
			" UNION ALL (SELECT " + itoa(pollKindRecord) + ", id, nonce, " + sqlZero + ", " + sqlZero + ", IF(id > ?, contents, NULL), " + sqlZero + ", " + sqlZero + " FROM " + t +
			" WHERE id >= ? ORDER BY id LIMIT ?)",
		heartbeat:       "UPDATE " + m + " SET heartbeat_us = " + commitTimeSQL + " WHERE one = 1",
		serverClock:     "SELECT " + commitTimeSQL,
		createMeta:      "INSERT INTO " + m + " (one, log_id, next_id, horizon) VALUES (1, ?, ?, 0)",
		maxID:           "SELECT COALESCE(MAX(id), 0) FROM " + t,
		maxMark:         "SELECT COALESCE(MAX(last_id), 0) FROM " + k,
		firstContents:   "SELECT contents FROM " + t + " ORDER BY id LIMIT 1",
		page:            "SELECT id, contents FROM " + t + " WHERE id BETWEEN ? AND ? ORDER BY id LIMIT ?",
		checkPage:       "SELECT id, single_key, nonce, contents FROM " + t + " WHERE id >= ? ORDER BY id LIMIT ?",
		marksPage:       "SELECT last_id, nonce, commit_us FROM " + k + " WHERE last_id >= ? ORDER BY last_id LIMIT ?",
		meta:            "SELECT log_id, next_id, horizon, latest_nonce, latest_us FROM " + m + " WHERE one = 1",
		raiseHorizon:    "UPDATE " + m + " SET horizon = GREATEST(horizon, ?) WHERE one = 1",
		pruneMarks:      "DELETE FROM " + k + " WHERE last_id < ? ORDER BY last_id LIMIT ?",
		compactUpdate:   "UPDATE " + t + " SET contents = ? WHERE id = ? AND LENGTH(contents) = ? AND CRC32(contents) = ?",
		deleteHead:      "DELETE FROM " + t + " WHERE id IN (",
		resetChunk:      "DELETE FROM " + t + " ORDER BY id LIMIT ?",
		resetMarksChunk: "DELETE FROM " + k + " ORDER BY last_id LIMIT ?",
		deleteAll:       "DELETE FROM " + t,
		deleteAllMarks:  "DELETE FROM " + k,
		newIdentity:     "UPDATE " + m + " SET log_id = ?, horizon = 0, latest_nonce = 0 WHERE one = 1",
	}
}

// sqlZero is an unsigned 0 for the unused columns of the Poll statement's
// parts, so the union's columns stay BIGINT UNSIGNED.
const sqlZero = "CAST(0 AS UNSIGNED)"

// itoa formats a small constant for SQL text.
func itoa(n int) string { return strconv.Itoa(n) }

// replaceSQL returns the REPLACE statement for n rows.
func (q *queries) replaceSQL(n int) string {
	var b strings.Builder
	b.Grow(len(q.replaceHead) + 8*n)
	b.WriteString(q.replaceHead)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?)")
	}
	return b.String()
}

// deleteSQL returns a DELETE for n rows, each named by id and deleted
// only if its contents still have the length and CRC-32 read earlier (a
// row another compaction rewrote meanwhile stays).
func (q *queries) deleteSQL(n int) string {
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

// escapedLen is the length of b as an escaped string literal, the form
// the driver sends with interpolateParams=true (binary parameters are
// never longer).
func escapedLen(b []byte) int {
	n := len(b)
	for _, c := range b {
		switch c {
		case 0, '\n', '\r', '\\', '\'', '"', 0x1a:
			n++
		}
	}
	return n
}

// rowCost estimates the bytes one record adds to a REPLACE statement.
func rowCost(key, contents []byte) int {
	return rowOverhead + escapedLen(key) + escapedLen(contents)
}

// splitByCost cuts rows with the given costs into consecutive chunks
// [start, end) of at most maxRows rows and maxBytes summed cost. A row
// whose cost alone exceeds maxBytes gets a chunk of its own.
func splitByCost(costs []int, maxRows, maxBytes int) [][2]int {
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

// limitsFor returns the limits for a server with the given
// max_allowed_packet: one record with the longest indexed key must fit in
// one statement, and in a MEDIUMBLOB.
func limitsFor(packet int) logstore.Limits {
	rec := min(packet-stmtOverhead-maxSingleKey-rowOverhead, mediumBlobMax)
	return logstore.Limits{MaxRecordSize: max(rec, 0), MaxSingleKeySize: maxSingleKey}
}

// statementBudget is the summed row cost one statement may carry.
func (s *Store) statementBudget(packet int) int {
	b := packet - stmtOverhead
	if s.opts.MaxStatementBytes > 0 {
		b = min(b, s.opts.MaxStatementBytes)
	}
	return max(b, 1)
}
