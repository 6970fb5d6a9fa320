-- whycache change log for MySQL 5.7+ / MariaDB 10.3+.
--
-- Run as is for the default table name `whycache`, or let
-- MySQLStore.CreateTable (whycache init-schema) substitute another name:
-- every `whycache` and `whycache_meta` identifier below is replaced.
-- Statements end with a semicolon at the end of a line.

-- The log: one row per record. Ids are assigned by the writers from the
-- counter in whycache_meta (not AUTO_INCREMENT), so commit order equals id
-- order. A record holding exactly one key stores it in single_key; a newer
-- record for the same key REPLACEs the older row (keys longer than 1024
-- bytes are stored as NULL and never replaced). MEDIUMBLOB holds records
-- up to 16 MiB - 1, which is above the server's default max_allowed_packet
-- on MariaDB (16 MiB, less statement overhead) and MySQL 5.7 (4 MiB).
CREATE TABLE IF NOT EXISTS `whycache` (
  id BIGINT UNSIGNED NOT NULL,
  single_key VARBINARY(1024) NULL,
  contents MEDIUMBLOB NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY single_key (single_key)
) ENGINE=InnoDB;

-- The log's metadata: exactly one row (one = 1). log_id is the log
-- identity (random, changed by Reset), next_id the id the next record
-- gets (writers lock this row to take ids), horizon the compaction
-- horizon (a reader below it rebuilds from the start of the log).
CREATE TABLE IF NOT EXISTS `whycache_meta` (
  one TINYINT UNSIGNED NOT NULL,
  log_id BINARY(16) NOT NULL,
  next_id BIGINT UNSIGNED NOT NULL,
  horizon BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (one),
  CHECK (one = 1)
) ENGINE=InnoDB;
