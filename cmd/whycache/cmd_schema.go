package main

import (
	"flag"
	"fmt"
)

func initSchemaCommand() *command {
	return &command{
		name:    "init-schema",
		args:    "",
		summary: "create the log: the MySQL tables, or the log directory",
		help: `Creates the log; the only command besides demo that does. For a MySQL store,
creates the log table (--table), its meta table with the log's identity and
its marks table if they do not exist (the statements of schema.sql),
upgrades tables of an earlier version in place, refuses a table it does not
recognise (a Python whycache table, say: with --format python it creates
Python whycache's table instead, as Python's documentation gives it, only if
it is missing, and no other table), then checks the server's settings
and prints a warning for each one that breaks the log's guarantees
(read-only server, non-durable commits, ...). Run it on the primary. For a
file store, creates the log directory and its MANIFEST; a directory that
holds segment files without a MANIFEST is refused, never overwritten. Safe to
run again.`,
		maxArgs: 0,
		setup: func(fs *flag.FlagSet) runFunc {
			return func(e *env, _ []string) error { return e.initSchema() }
		},
	}
}

func (e *env) initSchema() error {
	e.createLog = true
	s, err := e.openStore()
	if err != nil {
		return err
	}
	defer s.close()
	var warnings []string
	if s.mysql != nil {
		if err := s.mysql.CreateTable(e.ctx); err != nil {
			return wrap(err, "init-schema %s", s.describe())
		}
		if warnings, err = s.mysql.CheckServer(e.ctx); err != nil {
			return wrap(err, "init-schema %s: check server", s.describe())
		}
		for _, w := range warnings {
			e.warnf("%s", w)
		}
	}
	info, err := s.store.Info(e.ctx)
	if err != nil {
		return wrap(err, "init-schema %s", s.describe())
	}
	latest, err := s.store.LatestUpdateID(e.ctx)
	if err != nil {
		return wrap(err, "init-schema %s", s.describe())
	}
	if e.g.json {
		if warnings == nil {
			warnings = []string{}
		}
		return writeJSON(e.stdout, struct {
			Store    string   `json:"store"`
			LogID    string   `json:"log_id"`
			LatestID uint64   `json:"latest_id"`
			Warnings []string `json:"warnings"`
		}{s.describe(), fmt.Sprintf("%x", info.ID), latest, warnings})
	}
	e.printf("log ready: %s (log id %x, latest id %d", s.describe(), info.ID, latest)
	if len(warnings) > 0 {
		e.printf(", %d server warnings above", len(warnings))
	}
	e.printf(")\n")
	return nil
}
