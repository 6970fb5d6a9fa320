package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
)

func lsCommand() *command {
	return &command{
		name:    "ls",
		args:    "",
		summary: "list keys (and values) in ascending byte order",
		help: `Lists the keys of this machine's state in ascending byte order, one per line
(KEY<TAB>VALUE with --values). Keys and values that are not printable UTF-8,
or that hold tabs or line breaks, are printed Go-quoted ("a\tb"). With --json
the output is one JSON array of {"key", "value"} objects (see 'whycache get
--help' for the encoding).`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			prefix := fs.String("prefix", "", "list only keys that start with `P`")
			values := fs.Bool("values", false, "print the values too")
			limit := fs.Int("limit", 0, "stop after `N` keys (0: no limit)")
			update := fs.Bool("update", false, "apply new log records before listing")
			return func(e *env, _ []string) error {
				if *limit < 0 {
					return usageErrorf("ls: --limit %d: want 0 or more", *limit)
				}
				return e.ls(*prefix, *values, *limit, *update)
			}
		},
	}
}

func (e *env) ls(prefix string, values bool, limit int, update bool) error {
	e.oneConn = true // a follower: one connection per server, closed when idle
	s, err := e.openFor(update)
	if err != nil {
		return err
	}
	defer s.close()
	if err := e.maybeUpdate(s, update, "ls"); err != nil {
		return err
	}
	if err := s.requireValid("ls"); err != nil {
		return err
	}
	var p []byte
	if prefix != "" {
		p = []byte(prefix)
	}
	w := bufio.NewWriterSize(e.stdout, 64<<10)
	n := 0
	var werr error
	if e.g.json {
		w.WriteString("[")
	}
	err = s.inst.Scan(nil, p, func(k, v []byte) bool {
		if e.g.json {
			b, err := json.Marshal(newJSONItem(k, v, values))
			if err != nil {
				werr = err
				return false
			}
			if n > 0 {
				w.WriteString(",")
			}
			w.WriteString("\n")
			w.Write(b)
		} else if values {
			fmt.Fprintf(w, "%s\t%s\n", printable(k), printable(v))
		} else {
			fmt.Fprintf(w, "%s\n", printable(k))
		}
		n++
		return limit == 0 || n < limit
	})
	if e.g.json {
		w.WriteString("\n]\n")
	}
	if ferr := w.Flush(); werr == nil {
		werr = ferr
	}
	if err != nil {
		return wrap(err, "ls")
	}
	return werr
}
