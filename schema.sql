-- whycache change log for MySQL 5.7+ / MariaDB 10.3+.
--
-- Run as is for the default table name `whycache`, or let
-- MySQLStore.CreateTable (whycache init-schema) substitute another name:
-- every `whycache`, `whycache_meta` and `whycache_marks` identifier below is
-- replaced. Statements end with a semicolon at the end of a line.
--
-- Running these statements by hand creates the tables but not the meta row;
-- CreateTable creates that too (a random log identity, next_id above every
-- id already stored), and upgrades tables made by an earlier version in
-- place: it adds every column listed below that an existing table lacks,
-- with the definition written here. So a column added in a later version
-- must have a DEFAULT.

-- The log: one row per record. Ids are assigned by the writers from the
-- counter in whycache_meta (not AUTO_INCREMENT), so commit order equals id
-- order. A record holding exactly one key stores it in single_key; a newer
-- record for the same key REPLACEs the older row (keys longer than 1024
-- bytes are stored as NULL and never replaced). MEDIUMBLOB holds records
-- up to 16 MiB - 1, which is above the server's default max_allowed_packet
-- on MariaDB (16 MiB, less statement overhead) and MySQL 5.7 (4 MiB).
-- nonce is the random nonce of the commit transaction that wrote the row
-- (every row of one transaction has the same one); 0 for rows written
-- before nonces existed.
CREATE TABLE IF NOT EXISTS `whycache` (
  id BIGINT UNSIGNED NOT NULL,
  single_key VARBINARY(1024) NULL,
  contents MEDIUMBLOB NOT NULL,
  nonce BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY single_key (single_key)
) ENGINE=InnoDB;

-- The log's metadata: exactly one row (one = 1). log_id is the log
-- identity (random, changed by Reset), next_id the id the next record
-- gets (writers lock this row to take ids), horizon the compaction
-- horizon (a reader below it rebuilds from the start of the log).
-- latest_nonce and latest_us are the nonce and the commit time (the
-- server's clock, microseconds since 1970 UTC) of the latest commit; 0
-- before the first commit with a nonce, and latest_nonce is 0 again after
-- Reset. heartbeat_us is the primary's clock (as latest_us) at the last
-- heartbeat (a follow daemon's --heartbeat), 0 if none: a reader of a
-- replica compares it with the replica's clock to tell how far it lags.
CREATE TABLE IF NOT EXISTS `whycache_meta` (
  one TINYINT UNSIGNED NOT NULL,
  log_id BINARY(16) NOT NULL,
  next_id BIGINT UNSIGNED NOT NULL,
  horizon BIGINT UNSIGNED NOT NULL,
  latest_nonce BIGINT UNSIGNED NOT NULL DEFAULT 0,
  latest_us BIGINT UNSIGNED NOT NULL DEFAULT 0,
  heartbeat_us BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (one),
  CHECK (one = 1)
) ENGINE=InnoDB;

-- The commit marks: one row per commit transaction, written in it: the id
-- of its last record, its nonce and its commit time (as in whycache_meta).
-- A commit stays verifiable by its mark after its rows were REPLACEd by
-- newer single-key records or dropped by a compaction. Raising the
-- compaction horizon deletes the marks below it (readers there rebuild
-- anyway), except the latest commit's; Reset deletes them all.
CREATE TABLE IF NOT EXISTS `whycache_marks` (
  last_id BIGINT UNSIGNED NOT NULL,
  nonce BIGINT UNSIGNED NOT NULL,
  commit_us BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (last_id)
) ENGINE=InnoDB;
