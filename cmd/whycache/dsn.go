package main

import "strings"

// redactedPassword replaces a password in redactDSN's output.
const redactedPassword = "xxxxx"

// redactDSN returns dsn with its password replaced by "xxxxx", for
// messages. It understands the go-sql-driver/mysql form
// [user[:password]@][net[(addr)]]/dbname[?params] the way the driver
// parses it (the password runs from the first ':' to the last '@' before
// the last '/'), with an optional "mysql:" prefix as the command line
// takes it. A string without a password comes back unchanged; one it
// cannot parse loses everything before its last '@'.
func redactDSN(dsn string) string {
	if rest, ok := strings.CutPrefix(dsn, "mysql:"); ok && !strings.HasPrefix(rest, "//") {
		return "mysql:" + redactDSN(rest)
	}
	end := strings.LastIndexByte(dsn, '/')
	if end < 0 {
		end = len(dsn)
	}
	at := strings.LastIndexByte(dsn[:end], '@')
	if at < 0 {
		if strings.IndexByte(dsn[end:], '@') >= 0 {
			// An '@' only after the last '/': not a form the driver
			// reads, so hide what could be credentials.
			return redactedPassword + dsn[strings.LastIndexByte(dsn, '@'):]
		}
		return dsn
	}
	colon := strings.IndexByte(dsn[:at], ':')
	if colon < 0 {
		return dsn
	}
	return dsn[:colon+1] + redactedPassword + dsn[at:]
}
