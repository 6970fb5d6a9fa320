// Package respserver serves a whycache Instance over the Redis protocol
// (RESP2), so that programs in other languages can use the cache through
// their ordinary Redis clients. It is the server behind "whycache serve".
//
// Reads (GET, MGET, EXISTS, TTL, SCAN, KEYS) are reads of the local shared
// state: no lock and no system call per key. Writes (SET, MSET, SETEX, DEL) go
// through the Instance: they return after the log commit and the local
// apply, so a connection reads its own writes. Consecutive plain SETs of
// one pipeline are committed together through SetMulti, in order, which
// keeps each connection's order and the meaning of every command.
//
// Connections are served by event loops (github.com/panjf2000/gnet/v2, one
// per GOMAXPROCS): a loop reads a connection when it is readable, parses
// its commands with github.com/tidwall/redcon's parser, runs the reads in
// place and sends the replies of one read with one write, with no
// goroutine per connection. A write and the commands after it in the same
// read run on a goroutine of their own, since a commit waits for the log;
// the connection's later input waits for it, so every connection keeps
// its order. This package holds the command table and the semantics. Access control is
// the listener's business (loopback addresses, Unix socket modes) plus an
// optional password (Config.Password): with one set, every command but
// AUTH, HELLO, PING and QUIT answers NOAUTH until the client authenticates.
//
// The package is internal: its one user is the command-line tool, and
// keeping it internal leaves the command table free to change.
package respserver
