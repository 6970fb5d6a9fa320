package peers

import (
	"runtime/debug"
	"strings"
)

// moduleVersion returns the version of module path in this binary ("" if
// unknown); a module replaced by a directory is reported as such.
func moduleVersion(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, m := range bi.Deps {
		if m.Path == path {
			if m.Replace != nil && !strings.HasPrefix(m.Replace.Version, "v") {
				return "local " + m.Replace.Path
			}
			return m.Version
		}
	}
	return ""
}
