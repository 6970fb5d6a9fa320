package statedir

import (
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
)

// Trust names the owners, besides the effective uid and root, whose
// directories and files are accepted. The zero value trusts nobody else.
type Trust struct {
	// Users are trusted uids: their files and directories are accepted,
	// for example the uid of the service that maintains a state that this
	// process only reads.
	Users []int
	// Groups are trusted gids: a directory or file whose group is one of
	// them is accepted whoever owns it, and may be writable by its group.
	// Only the members of a group (and root) can give a file that group,
	// so this trusts every member.
	Groups []int
}

// ownerTrusted reports whether uid is the effective uid, root or a trusted
// uid.
func (t Trust) ownerTrusted(uid uint32) bool {
	return int(uid) == os.Geteuid() || uid == 0 || slices.Contains(t.Users, int(uid))
}

// groupTrusted reports whether gid is a trusted group.
func (t Trust) groupTrusted(gid uint32) bool { return slices.Contains(t.Groups, int(gid)) }

// userName describes uid as "uid 1001 (mallory)", or "uid 1001" when it
// has no name.
func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		return fmt.Sprintf("uid %s (%s)", id, u.Username)
	}
	return "uid " + id
}

// trustedByDefault names the owners trusted without a Trust: "you (uid
// 1000 (alice)), root," or, for root, "you (root)".
func trustedByDefault() string {
	if os.Geteuid() == 0 {
		return "you (root)"
	}
	return "you (" + userName(uint32(os.Geteuid())) + "), root,"
}

// groupName describes gid as "gid 1001 (staff)", or "gid 1001".
func groupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil && g.Name != "" {
		return fmt.Sprintf("gid %s (%s)", id, g.Name)
	}
	return "gid " + id
}
