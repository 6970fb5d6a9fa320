package respserver

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tidwall/redcon"
)

// infoSections are INFO's sections in order.
var infoSections = []string{"server", "clients", "stats", "replication", "keyspace"}

// info answers INFO [section ...]: Redis's server, clients, stats,
// replication and keyspace sections, the replication section carrying
// the state's update id and, from the follow loop, its lag.
func (s *Server) info(c redcon.Conn, _ *client, args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		sec := string(appendLower(nil, a))
		if sec == "all" || sec == "everything" || sec == "default" {
			for _, n := range infoSections {
				want[n] = true
			}
			continue
		}
		want[sec] = true
	}
	if len(args) == 1 {
		for _, n := range infoSections {
			want[n] = true
		}
	}
	var b strings.Builder
	for _, sec := range infoSections {
		if !want[sec] {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		if err := s.writeInfo(&b, sec); err != nil {
			c.WriteError(errorReply(err))
			return
		}
	}
	c.WriteBulkString(b.String())
}

func (s *Server) writeInfo(b *strings.Builder, sec string) error {
	line := func(k string, v any) { fmt.Fprintf(b, "%s:%v\r\n", k, v) }
	switch sec {
	case "server":
		b.WriteString("# Server\r\n")
		line("redis_version", Version)
		line("redis_mode", "standalone")
		line("whycache_server", "whycache serve")
		line("os", runtime.GOOS+" "+runtime.GOARCH)
		line("go_version", runtime.Version())
		line("process_id", os.Getpid())
		line("uptime_in_seconds", int64(time.Since(s.started).Seconds()))
		line("whycache_state", s.inst.StatePath())
	case "clients":
		b.WriteString("# Clients\r\n")
		line("connected_clients", s.clients.Load())
	case "stats":
		b.WriteString("# Stats\r\n")
		line("total_connections_received", s.lastID.Load())
		line("total_commands_processed", s.commands.Load())
	case "replication":
		st, err := s.inst.Stats(nil)
		if err != nil {
			return err
		}
		b.WriteString("# Replication\r\n")
		line("role", "master")
		line("connected_slaves", 0)
		line("whycache_state_valid", boolInt(st.Valid))
		line("whycache_update_id", st.UpdateID)
		if s.follow == nil {
			line("whycache_follow", "off")
			break
		}
		fs, ok := s.follow()
		if !ok {
			line("whycache_follow", "starting")
			break
		}
		line("whycache_follow", "on")
		line("whycache_follow_leader", boolInt(fs.Leader))
		line("whycache_latest_id", fs.LatestID)
		line("whycache_lag_records", fs.LagRecords)
		line("whycache_lag_seconds", fmt.Sprintf("%.3f", fs.LagSeconds))
		line("whycache_follow_failures", fs.Failures)
	case "keyspace":
		st, err := s.inst.Stats(nil)
		if err != nil {
			return err
		}
		b.WriteString("# Keyspace\r\n")
		if st.Keys > 0 {
			// Keys counts expired items not yet overwritten or dropped,
			// as Redis counts the expired keys it has not evicted yet.
			fmt.Fprintf(b, "db0:keys=%d\r\n", st.Keys)
		}
	}
	return nil
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// command answers COMMAND, COMMAND COUNT, COMMAND INFO name... and
// COMMAND DOCS (empty: redis-cli asks for it at start).
func (s *Server) command(c redcon.Conn, _ *client, args [][]byte) {
	if len(args) == 1 {
		names := make([]string, 0, len(commandTable))
		for n := range commandTable {
			names = append(names, n)
		}
		slices.Sort(names)
		c.WriteArray(len(names))
		for _, n := range names {
			writeCommandInfo(c, commandTable[n])
		}
		return
	}
	switch sub := string(appendLower(nil, args[1])); sub {
	case "count":
		c.WriteInt(len(commandTable))
	case "docs":
		c.WriteArray(0)
	case "info":
		c.WriteArray(len(args) - 2)
		for _, a := range args[2:] {
			if sp := commandTable[string(appendLower(nil, a))]; sp != nil {
				writeCommandInfo(c, sp)
			} else {
				c.WriteNull()
			}
		}
	default:
		c.WriteError("ERR unknown subcommand '" + clip(args[1]) + "'. Try COMMAND HELP.")
	}
}

// writeCommandInfo writes one command's entry as Redis 7 does: name,
// arity, flags, first key, last key, step, ACL categories, tips, key
// specifications, subcommands.
func writeCommandInfo(c redcon.Conn, sp *commandSpec) {
	first, last, step := 1, 1, 1
	switch sp.name {
	case "mget", "del", "unlink", "exists":
		last = -1
	case "get", "set", "ttl", "pttl":
	default:
		first, last, step = 0, 0, 0
	}
	c.WriteArray(10)
	c.WriteBulkString(sp.name)
	c.WriteInt(sp.arity)
	flags := []string{"readonly", "fast"}
	if sp.write {
		flags = []string{"write"}
	}
	if sp.noAuth {
		flags = append(flags, "no_auth")
	}
	c.WriteArray(len(flags))
	for _, f := range flags {
		c.WriteString(f)
	}
	c.WriteInt(first)
	c.WriteInt(last)
	c.WriteInt(step)
	c.WriteArray(0)
	c.WriteArray(0)
	c.WriteArray(0)
	c.WriteArray(0)
}

// configParams are the parameters CONFIG GET shows: what clients such as
// redis-benchmark ask for, with the values that describe this server (no
// persistence of its own, one database).
var configParams = [][2]string{
	{"appendonly", "no"},
	{"databases", "1"},
	{"save", ""},
}

// config answers CONFIG GET pattern...; the configuration is the command
// line's, so CONFIG SET and the rest are refused.
func (s *Server) config(c redcon.Conn, _ *client, args [][]byte) {
	if string(appendLower(nil, args[1])) != "get" {
		c.WriteError("ERR CONFIG " + clip(args[1]) + " is not supported: whycache serve is configured by its command line")
		return
	}
	if len(args) < 3 {
		c.WriteError("ERR wrong number of arguments for 'config|get' command")
		return
	}
	var out [][2]string
	for _, p := range configParams {
		for _, pat := range args[2:] {
			if globMatch(appendLower(nil, pat), []byte(p[0])) {
				out = append(out, p)
				break
			}
		}
	}
	c.WriteArray(2 * len(out))
	for _, p := range out {
		c.WriteBulkString(p[0])
		c.WriteBulkString(p[1])
	}
}
