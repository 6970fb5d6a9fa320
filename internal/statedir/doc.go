// Package statedir opens a state directory safely on a machine shared with
// other users, and creates, opens, renames and removes the files in it (the
// state file, its lock files, temporary and swap files) without ever being
// redirected to a file another user chose.
//
// # Threat model
//
// Other local users, without root, who can create files and directories in
// world-writable places such as /dev/shm and /tmp, want a process of the
// victim (possibly root) to read data they planted, to write where they
// point, or to let them change the victim's state. Their tools: creating
// the state directory first (squatting), planting a state file or a
// symbolic link where a file will be created or opened, renaming a file of
// theirs over the state, and writing to a file or directory that is
// writable by them. Root and the users and groups the caller trusts are not
// adversaries (root can do anything anyway); neither is the kernel. Denial
// of service (a squatted name the victim then refuses) is accepted: the
// error says what to remove. Attacks through ancestors of the directory are
// out of scope: the directory itself is checked (its owner and mode), which
// a replaced ancestor cannot forge.
//
// # Rules
//
// A directory is accepted (Open) when, by fstat of the descriptor opened
// without following a symbolic link in its last element:
//   - it is a directory, not a symbolic link to one;
//   - its owner is trusted: the effective uid, root, a uid in
//     Trust.Users, or its group is in Trust.Groups;
//   - nobody untrusted can write to it: not writable by others, nor by its
//     group unless that group is trusted, except when the sticky bit is
//     set (like /tmp and /dev/shm). In such a shared directory other users
//     can create names but not remove or rename files they do not own, so
//     a file in it is only accepted when the caller or a trusted uid owns
//     it (group trust does not extend to files there).
//
// A missing directory is created (Options.Create) with mode 0700 (or
// Options.DirMode), owned by the effective uid.
//
// A file is opened relative to the directory's descriptor (openat), by a
// single name, with O_NOFOLLOW|O_CLOEXEC|O_NOCTTY|O_NONBLOCK (so a planted
// symbolic link is refused rather than followed, and a planted FIFO does not
// block the open), and accepted when, by fstat of the opened descriptor:
//   - it is a regular file;
//   - its owner is trusted (as for directories, with the rule for shared
//     directories above);
//   - nobody untrusted can write to it: not writable by others, nor by its
//     group unless that group is trusted.
//
// Every refusal is an *UnsafeError wrapping ErrUnsafe that names the path,
// says exactly what is wrong and gives the command that fixes it (chmod,
// chown or rm), the way ssh's StrictModes and tmux's socket directory
// checks do.
//
// # Platform
//
// The package relies on openat(2), linkat(2), renameat(2) and O_NOFOLLOW
// and is built for Linux, like the state files it serves.
package statedir

import _ "github.com/whycache/whycache/internal/linux" // Linux only: a build for another system stops there
