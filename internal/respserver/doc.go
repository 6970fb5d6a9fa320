// Package respserver serves a whycache Instance over the Redis protocol
// (RESP2), so that programs in other languages can use the cache through
// their ordinary Redis clients. It is the server behind "whycache serve".
//
// Reads (GET, MGET, EXISTS, TTL, SCAN, KEYS) are reads of the local shared
// state: no lock and no system call per key. Writes (SET, DEL) go
// through the Instance: they return after the log commit and the local
// apply, so a connection reads its own writes. Consecutive plain SETs of
// one pipeline are committed together through SetMulti, in order, which
// keeps each connection's order and the meaning of every command.
//
// The protocol (parsing, buffering, pipelining) is github.com/tidwall/redcon;
// this package holds the command table and the semantics. Access control is
// the listener's business (loopback addresses, Unix socket modes) plus an
// optional password (Config.Password): with one set, every command but
// AUTH, HELLO, PING and QUIT answers NOAUTH until the client authenticates.
//
// The package is internal: its one user is the command-line tool, and
// keeping it internal leaves the command table free to change.
package respserver
