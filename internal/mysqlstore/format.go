package mysqlstore

import (
	"fmt"
	"strings"
)

// Format is the layout of the log a Store works on.
type Format int

const (
	// FormatGo is the store's own layout (schema.sql): the log table with
	// explicit ids and nonces, its meta table and its marks table, records
	// in logstore's Go framing. The zero Format.
	FormatGo Format = iota

	// FormatPython is Python whycache's table as Python creates it (an
	// AUTO_INCREMENT id, single_key, contents; no other table), records in
	// the Python framing (see the package documentation, "Python mode").
	FormatPython
)

// String returns the name ParseFormat accepts: "go" or "python".
func (f Format) String() string {
	switch f {
	case FormatGo:
		return "go"
	case FormatPython:
		return "python"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat returns the Format named "go" or "python" (case-insensitive).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "go":
		return FormatGo, nil
	case "python":
		return FormatPython, nil
	}
	return 0, fmt.Errorf("mysqlstore: unknown log format %q (want go or python)", s)
}
