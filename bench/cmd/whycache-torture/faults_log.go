package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"
	"github.com/whycache/whycache"
	"golang.org/x/sys/unix"
)

// What the operator does to the log in the faults scenario: back it up
// and restore it (a copied directory, copied tables, a dump), damage a
// byte, lose the MANIFEST, make another log. The file store layout
// (MANIFEST, lock, segment files) and the MySQL schema are those
// documented by whycache.FileStore and schema.sql.

// Restore methods.
const (
	// restoreSwap builds the restored copy beside the log and swaps it in
	// atomically: renameat2(RENAME_EXCHANGE) of the directories under the
	// writer lock, or one RENAME TABLE of the three tables.
	restoreSwap = "swap"
	// restoreInPlace replaces the log where it is: rm -rf and a copy of the
	// backup under the writer lock, or one transaction deleting the rows
	// and inserting the backup's (with the counter row locked).
	restoreInPlace = "in-place"
	// restoreDump loads a mariadb-dump (mysqldump) of the tables with the
	// command-line client: DROP, CREATE and INSERT, one table after the
	// other, so it is used only while every writer is paused.
	restoreDump = "dump"
)

// fsManifest and fsLock are the names of the file store's MANIFEST and
// writer lock files.
const (
	fsManifest = "MANIFEST"
	fsLock     = "lock"
)

// logBackup is a copy of the log.
type logBackup struct {
	method string
	dir    string // file store: the copied directory
	dump   string // restoreDump: the dump file
	latest uint64 // the log's latest id when it was copied
}

// mysqlTables returns the tables of the log table.
func mysqlTables(table string) []string {
	return []string{table, table + "_meta", table + "_marks"}
}

// lockFileStore takes the file store's writer lock (the flock on its lock
// file), as an operator copying a live directory should, and returns the
// function that releases it.
func lockFileStore(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, fsLock), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("whycache-torture: writer lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("whycache-torture: flock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// copyDir copies the regular files of src into dst (created), keeping
// their permissions.
func copyDir(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("whycache-torture: copy: %w", err)
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("whycache-torture: copy: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("whycache-torture: copy: %w", err)
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return fmt.Errorf("whycache-torture: copy: %w", err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return fmt.Errorf("whycache-torture: copy: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("whycache-torture: copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("whycache-torture: copy: %w", err)
	}
	return nil
}

// backupLog copies the log while writers run, the way method's restore
// needs: the file store directory under the writer lock; the MySQL tables
// into bak_ tables, or with mariadb-dump, while a transaction holds the
// counter row (so nothing commits during the copy).
func (r *faultRun) backupLog(method string) (*logBackup, error) {
	ctx := r.ctx
	b := &logBackup{method: method}
	if r.log.dir != "" {
		unlock, err := lockFileStore(r.log.dir)
		if err != nil {
			return nil, err
		}
		defer unlock()
		b.dir = filepath.Join(r.work, fmt.Sprintf("backup%d", r.seq()))
		if err := copyDir(r.log.dir, b.dir); err != nil {
			return nil, err
		}
		// No commit is in progress while the lock is held. A new handle
		// reads the log afresh; the machines' handles must agree with it.
		fresh, closeFresh, err := r.log.openExisting()
		if err != nil {
			return nil, err
		}
		b.latest, err = fresh.LatestUpdateID(ctx)
		closeFresh()
		if err != nil {
			return nil, err
		}
		for _, m := range r.machines {
			latest, err := m.store.LatestUpdateID(ctx)
			if err != nil {
				return nil, fmt.Errorf("whycache-torture: %s's store: %w", m.name, err)
			}
			if latest != b.latest {
				return nil, fmt.Errorf("%w: with no commit in progress, %s's store handle says the latest record is %d, a new handle %d",
					errLost, m.name, latest, b.latest)
			}
		}
		return b, nil
	}
	if method != restoreDump {
		for _, t := range mysqlTables(r.log.table) {
			if err := r.exec("DROP TABLE IF EXISTS `bak_" + t + "`"); err != nil {
				return nil, err
			}
			if err := r.exec("CREATE TABLE `bak_" + t + "` LIKE `" + t + "`"); err != nil {
				return nil, err
			}
		}
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("whycache-torture: backup: %w", err)
	}
	defer tx.Rollback()
	var next uint64
	if err := tx.QueryRowContext(ctx, "SELECT next_id FROM `"+r.log.table+"_meta` WHERE one = 1 FOR UPDATE").Scan(&next); err != nil {
		return nil, fmt.Errorf("whycache-torture: backup: %w", err)
	}
	b.latest = next - 1
	if method == restoreDump {
		b.dump = filepath.Join(r.work, fmt.Sprintf("backup%d.sql", r.seq()))
		out, err := os.OpenFile(b.dump, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("whycache-torture: backup: %w", err)
		}
		err = r.mysqlTool(r.dumpTool, nil, out, []string{"--single-transaction", "--hex-blob"}, mysqlTables(r.log.table))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	} else {
		for _, t := range mysqlTables(r.log.table) {
			if _, err := tx.ExecContext(ctx, "INSERT INTO `bak_"+t+"` SELECT * FROM `"+t+"`"); err != nil {
				return nil, fmt.Errorf("whycache-torture: backup %s: %w", t, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("whycache-torture: backup: %w", err)
	}
	return b, nil
}

// restoreLog puts the backup back over the log, by its method.
func (r *faultRun) restoreLog(b *logBackup) error {
	ctx := r.ctx
	if r.log.dir != "" {
		switch b.method {
		case restoreSwap:
			stage := r.log.dir + ".restore"
			if err := copyDir(b.dir, stage); err != nil {
				return err
			}
			unlock, err := lockFileStore(r.log.dir)
			if err != nil {
				return err
			}
			err = unix.Renameat2(unix.AT_FDCWD, stage, unix.AT_FDCWD, r.log.dir, unix.RENAME_EXCHANGE)
			unlock()
			if err != nil {
				return fmt.Errorf("whycache-torture: restore: rename %s and %s: %w", stage, r.log.dir, err)
			}
			return os.RemoveAll(stage) // the log as it was before the restore
		case restoreInPlace:
			unlock, err := lockFileStore(r.log.dir)
			if err != nil {
				return err
			}
			defer unlock()
			if err := os.RemoveAll(r.log.dir); err != nil {
				return fmt.Errorf("whycache-torture: restore: %w", err)
			}
			return copyDir(b.dir, r.log.dir)
		}
		return fmt.Errorf("whycache-torture: no %s restore for the file store", b.method)
	}
	tables := mysqlTables(r.log.table)
	switch b.method {
	case restoreDump:
		in, err := os.Open(b.dump)
		if err != nil {
			return fmt.Errorf("whycache-torture: restore: %w", err)
		}
		defer in.Close()
		return r.mysqlTool(r.clientTool, in, io.Discard, nil, nil)
	case restoreSwap:
		var renames []string
		for _, t := range tables {
			for _, q := range []string{
				"DROP TABLE IF EXISTS `rst_" + t + "`",
				"CREATE TABLE `rst_" + t + "` LIKE `bak_" + t + "`",
				"INSERT INTO `rst_" + t + "` SELECT * FROM `bak_" + t + "`",
				"DROP TABLE IF EXISTS `old_" + t + "`",
			} {
				if err := r.exec(q); err != nil {
					return err
				}
			}
			renames = append(renames, "`"+t+"` TO `old_"+t+"`", "`rst_"+t+"` TO `"+t+"`")
		}
		if err := r.exec("RENAME TABLE " + strings.Join(renames, ", ")); err != nil {
			return err
		}
		for _, t := range tables {
			if err := r.exec("DROP TABLE `old_" + t + "`"); err != nil {
				return err
			}
		}
		return nil
	case restoreInPlace:
		tx, err := r.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("whycache-torture: restore: %w", err)
		}
		defer tx.Rollback()
		log, meta, marks := tables[0], tables[1], tables[2]
		for _, q := range []string{
			"SELECT one FROM `" + meta + "` WHERE one = 1 FOR UPDATE", // writers wait here
			"DELETE FROM `" + log + "`",
			"INSERT INTO `" + log + "` SELECT * FROM `bak_" + log + "`",
			"DELETE FROM `" + marks + "`",
			"INSERT INTO `" + marks + "` SELECT * FROM `bak_" + marks + "`",
			// The counter row is updated in place: a writer waiting for
			// its lock then reads the restored row.
			"UPDATE `" + meta + "` m JOIN `bak_" + meta + "` b ON b.one = m.one SET m.log_id = b.log_id, m.next_id = b.next_id, " +
				"m.horizon = b.horizon, m.latest_nonce = b.latest_nonce, m.latest_us = b.latest_us",
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("whycache-torture: restore: %s: %w", q, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("whycache-torture: restore: %w", err)
		}
		return nil
	}
	return fmt.Errorf("whycache-torture: no %s restore for MySQL", b.method)
}

// dropBackup removes what backupLog made.
func (r *faultRun) dropBackup(b *logBackup) {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
	if b.dump != "" {
		os.Remove(b.dump)
	}
	if r.log.table != "" && b.method != restoreDump {
		for _, t := range mysqlTables(r.log.table) {
			r.exec("DROP TABLE IF EXISTS `bak_" + t + "`")
		}
	}
}

// exec runs one administrative statement.
func (r *faultRun) exec(q string) error {
	if _, err := r.db.ExecContext(r.ctx, q); err != nil {
		return fmt.Errorf("whycache-torture: %s: %w", q, err)
	}
	return nil
}

// findMySQLTools returns the dump and client programs (MariaDB's names
// first), or empty strings when neither pair is installed.
func findMySQLTools() (dump, client string) {
	for _, pair := range [][2]string{{"mariadb-dump", "mariadb"}, {"mysqldump", "mysql"}} {
		d, err1 := exec.LookPath(pair[0])
		c, err2 := exec.LookPath(pair[1])
		if err1 == nil && err2 == nil {
			return d, c
		}
	}
	return "", ""
}

// mysqlTool runs a MySQL command-line program with options opts on the
// DSN's database and tables (the password in the environment, never on
// the command line).
func (r *faultRun) mysqlTool(tool string, stdin io.Reader, stdout io.Writer, opts, tables []string) error {
	cfg, err := mysql.ParseDSN(r.log.dsn)
	if err != nil {
		return fmt.Errorf("whycache-torture: --dsn: %w", err)
	}
	var conn []string
	switch cfg.Net {
	case "unix":
		conn = []string{"--socket=" + cfg.Addr}
	default:
		host, port, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			host, port = cfg.Addr, "3306"
		}
		conn = []string{"--protocol=TCP", "--host=" + host, "--port=" + port}
	}
	all := append(append(append(conn, "--user="+cfg.User), opts...), cfg.DBName)
	all = append(all, tables...)
	cmd := exec.CommandContext(r.ctx, tool, all...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+cfg.Passwd)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("whycache-torture: %s: %v: %s", filepath.Base(tool), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// logDamage is a byte flipped in the log, and how to put it back.
type logDamage struct {
	path   string // file store: the segment file
	offset int64  // in the file, or in the row's contents
	was    byte
	now    byte
	// id is the record whose frame (file store) or row (MySQL) holds the
	// byte; 0 if unknown. For a damaged segment magic it is the segment's
	// first record.
	id       uint64
	original []byte // MySQL: the row's contents before the damage
	damaged  []byte
}

func (d *logDamage) String() string {
	if d.path != "" {
		return fmt.Sprintf("byte %d of %s (record %d) %#02x -> %#02x", d.offset, filepath.Base(d.path), d.id, d.was, d.now)
	}
	return fmt.Sprintf("byte %d of row %d %#02x -> %#02x", d.offset, d.id, d.was, d.now)
}

// flipByte flips one byte, chosen at random, of a record already
// acknowledged: in a segment file (the tail or a sealed one), or in a
// random row's contents.
// Writers must be paused (every byte of the file store is then
// acknowledged).
func (r *faultRun) flipByte() (*logDamage, error) {
	rng := r.t.rng
	mask := byte(1 + rng.IntN(255))
	if r.log.dir != "" {
		segs, err := filepath.Glob(filepath.Join(r.log.dir, "*.seg"))
		if err != nil || len(segs) == 0 {
			return nil, fmt.Errorf("whycache-torture: no segment file in %s (%v)", r.log.dir, err)
		}
		// The tail (the last) half of the time, else a sealed segment.
		sort.Strings(segs)
		path := segs[len(segs)-1]
		if len(segs) > 1 && rng.IntN(2) == 0 {
			path = segs[rng.IntN(len(segs)-1)]
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("whycache-torture: %w", err)
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("whycache-torture: %s is empty", path)
		}
		d := &logDamage{path: path, offset: rng.Int64N(int64(len(data)))}
		d.was = data[d.offset]
		d.now = d.was ^ mask
		d.id = segmentFrameID(data, d.offset)
		return d, writeByte(path, d.offset, d.now)
	}
	latest, err := r.machines[0].store.LatestUpdateID(r.ctx)
	if err != nil {
		return nil, err
	}
	if latest == 0 {
		return nil, fmt.Errorf("whycache-torture: the log is empty: nothing to damage")
	}
	d := &logDamage{}
	from := 1 + rng.Uint64N(latest)
	err = r.db.QueryRowContext(r.ctx, "SELECT id, contents FROM `"+r.log.table+"` WHERE id >= ? ORDER BY id LIMIT 1", from).Scan(&d.id, &d.original)
	if errors.Is(err, sql.ErrNoRows) {
		err = r.db.QueryRowContext(r.ctx, "SELECT id, contents FROM `"+r.log.table+"` WHERE id < ? ORDER BY id DESC LIMIT 1", from).Scan(&d.id, &d.original)
	}
	if err != nil {
		return nil, fmt.Errorf("whycache-torture: choose a row to damage: %w", err)
	}
	d.offset = rng.Int64N(int64(len(d.original)))
	d.damaged = bytes.Clone(d.original)
	d.was = d.original[d.offset]
	d.now = d.was ^ mask
	d.damaged[d.offset] = d.now
	_, err = r.db.ExecContext(r.ctx, "UPDATE `"+r.log.table+"` SET contents = ? WHERE id = ?", d.damaged, d.id)
	if err != nil {
		return nil, fmt.Errorf("whycache-torture: damage row %d: %w", d.id, err)
	}
	return d, nil
}

// repair puts the flipped byte back, unless what it damaged is gone (a
// single-key row replaced since).
func (r *faultRun) repair(d *logDamage) error {
	if d.path != "" {
		return writeByte(d.path, d.offset, d.was)
	}
	_, err := r.db.ExecContext(r.ctx, "UPDATE `"+r.log.table+"` SET contents = ? WHERE id = ? AND contents = ?", d.original, d.id, d.damaged)
	if err != nil {
		return fmt.Errorf("whycache-torture: repair row %d: %w", d.id, err)
	}
	return nil
}

func writeByte(path string, off int64, b byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("whycache-torture: %w", err)
	}
	_, err = f.WriteAt([]byte{b}, off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("whycache-torture: %w", err)
	}
	return nil
}

// Format-2 segment layout (see whycache's filestore_segment.go): an
// 8-byte magic, then frames of u32 length | u64 id | u64 nonce | u8 flags
// | u32 header sum | contents | u64 sum, little-endian.
const (
	segMagic2     = "WHYCSEG2"
	segHeaderLen  = 25
	segTrailerLen = 8
)

// segmentFrameID returns the id of the frame of an intact format-2
// segment that holds byte off (the first frame's for the magic), or 0 if
// the segment is not one or off is past its frames.
func segmentFrameID(data []byte, off int64) uint64 {
	if len(data) < len(segMagic2) || string(data[:len(segMagic2)]) != segMagic2 {
		return 0
	}
	pos := int64(len(segMagic2))
	for pos+segHeaderLen <= int64(len(data)) {
		length := int64(binary.LittleEndian.Uint32(data[pos:]))
		id := binary.LittleEndian.Uint64(data[pos+4:])
		end := pos + segHeaderLen + length + segTrailerLen
		if off < end {
			return id
		}
		pos = end
	}
	return 0
}

// fileDigests returns the SHA-256 of every file in dir, by name.
func fileDigests(dir string) (map[string][32]byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("whycache-torture: %w", err)
	}
	sums := map[string][32]byte{}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("whycache-torture: %w", err)
		}
		sums[e.Name()] = sha256.Sum256(data)
	}
	return sums, nil
}

// sameFiles describes how two fileDigests results differ, or returns "".
func sameFiles(before, after map[string][32]byte) string {
	var diffs []string
	for name, sum := range before {
		if now, ok := after[name]; !ok {
			diffs = append(diffs, name+" is gone")
		} else if now != sum {
			diffs = append(diffs, name+" changed")
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			diffs = append(diffs, name+" appeared")
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, ", ")
}

// newOtherLog creates a fresh log of another identity beside the run's
// (a new directory, or a new table) and returns it and the function that
// removes it.
func (r *faultRun) newOtherLog() (logRef, func(), error) {
	n := r.seq()
	if r.log.dir != "" {
		ref := logRef{dir: filepath.Join(r.work, fmt.Sprintf("other%d", n)), segment: r.log.segment}
		_, closeStore, err := ref.open()
		if err != nil {
			return ref, nil, err
		}
		closeStore()
		return ref, func() { os.RemoveAll(ref.dir) }, nil
	}
	ref := logRef{dsn: r.log.dsn, table: fmt.Sprintf("%s_o%d", r.log.table, n)}
	ms, err := whycache.NewMySQLStore(r.db, ref.table)
	if err == nil {
		err = ms.CreateTable(r.ctx)
		ms.Close()
	}
	drop := func() {
		for _, t := range mysqlTables(ref.table) {
			r.db.ExecContext(context.Background(), "DROP TABLE IF EXISTS `"+t+"`")
		}
	}
	if err != nil {
		drop()
		return ref, nil, err
	}
	return ref, drop, nil
}
