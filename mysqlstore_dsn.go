package whycache

import "strings"

// myRedacted replaces a password in RedactDSN's output.
const myRedacted = "xxxxx"

// RedactDSN returns dsn with its password replaced by "xxxxx", for logs
// and error messages. It understands the go-sql-driver/mysql form
// [user[:password]@][net[(addr)]]/dbname[?params] the way the driver
// parses it (the password runs from the first ':' to the last '@' before
// the last '/'), with an optional "mysql:" prefix as the command line
// takes it. A string without a password comes back unchanged; one it
// cannot parse loses everything before its last '@'.
func RedactDSN(dsn string) string {
	if rest, ok := strings.CutPrefix(dsn, "mysql:"); ok && !strings.HasPrefix(rest, "//") {
		return "mysql:" + RedactDSN(rest)
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
			return myRedacted + dsn[strings.LastIndexByte(dsn, '@'):]
		}
		return dsn
	}
	colon := strings.IndexByte(dsn[:at], ':')
	if colon < 0 {
		return dsn
	}
	return dsn[:colon+1] + myRedacted + dsn[at:]
}
