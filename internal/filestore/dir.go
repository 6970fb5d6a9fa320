package filestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/whycache/whycache/logstore"
)

// dirListing is what a directory holds, as far as telling a file store
// from other things goes.
type dirListing struct {
	exists   bool
	manifest bool     // a MANIFEST
	segments []string // segment file names (parseSegmentName accepts them)
	python   []string // files in Python whycache's layout (N.bin, latest.repr)
}

// pythonName matches the files of Python whycache's file store.
var pythonName = regexp.MustCompile(`^(?:[0-9]+\.bin|latest\.repr)$`)

// listDir lists dir. A missing directory is not an error (exists is
// false).
func listDir(dir string) (dirListing, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return dirListing{}, nil
	}
	if err != nil {
		return dirListing{}, fmt.Errorf("filestore: %w", err)
	}
	l := dirListing{exists: true}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == manifestName:
			l.manifest = true
		case pythonName.MatchString(name):
			l.python = append(l.python, name)
		default:
			if _, _, ok := parseSegmentName(name); ok {
				l.segments = append(l.segments, name)
			}
		}
	}
	return l, nil
}

// refuse returns the error for a directory that cannot be opened as a file
// store whatever the options: one in Python whycache's layout, or segment
// files without a MANIFEST. It returns nil otherwise.
func (l dirListing) refuse(dir string) error {
	if len(l.python) > 0 {
		sort.Strings(l.python)
		return fmt.Errorf("filestore: %s holds files of Python whycache's file store (%s), which this store does not read; nothing was changed: %w",
			dir, someNames(l.python), logstore.ErrCorrupt)
	}
	if !l.manifest && len(l.segments) > 0 {
		return missingManifest(dir)
	}
	return nil
}

// someNames lists up to three names.
func someNames(names []string) string {
	if len(names) > 3 {
		return strings.Join(names[:3], ", ") + fmt.Sprintf(" and %d more", len(names)-3)
	}
	return strings.Join(names, ", ")
}

// missingManifest is the error for a directory without a MANIFEST: lost
// log metadata (logstore.ErrCorrupt) when segment files remain, else no
// log at all (logstore.ErrNoLog).
func missingManifest(dir string) error {
	l, err := listDir(dir)
	if err != nil {
		return err
	}
	if len(l.segments) > 0 {
		sort.Strings(l.segments)
		return fmt.Errorf("filestore: %s holds segment files (%s) but no MANIFEST: the log's metadata is lost; restore the MANIFEST from a backup, or move the directory away to start a new log (the files were left as they are): %w",
			dir, someNames(l.segments), logstore.ErrCorrupt)
	}
	return noLog(dir)
}

// noLog is the error for a directory that holds no log.
func noLog(dir string) error {
	return fmt.Errorf("filestore: %s holds no log (no MANIFEST); create one with \"whycache init-schema --store file:%s\": %w",
		dir, dir, logstore.ErrNoLog)
}

// checkDir checks that dir holds the segments m lists and no segment
// files from beyond m's history (see classify): a MANIFEST restored from
// a backup beside newer segments, or a listed segment lost, is
// logstore.ErrCorrupt naming the file.
func checkDir(dir string, m *manifest) error {
	l, err := listDir(dir)
	if err != nil {
		return err
	}
	if err := l.refuse(dir); err != nil {
		return err
	}
	present := make(map[string]bool, len(l.segments))
	for _, name := range l.segments {
		present[name] = true
	}
	for _, sg := range m.Segments {
		if !present[sg.Name] {
			return corruptf("%s: segment %s listed in the MANIFEST is missing", dir, sg.Name)
		}
	}
	_, beyond, err := classify(dir, m, l.segments)
	if err != nil {
		return err
	}
	if len(beyond) > 0 {
		return corruptf("%s: segment files %s hold ids beyond the MANIFEST's history (generation %d, ids from %d): the MANIFEST is older than the segments, as when it was restored from a backup beside newer files; restore the whole directory from one backup, or restore the newer MANIFEST (the files were left as they are)",
			dir, someNames(beyond), m.Generation, m.IDFloor)
	}
	return nil
}

// classify sorts the segment files of a directory that m does not list
// into orphans, which the store's own crashes leave behind and which it
// removes, and files from beyond m's history. Orphans are: files listed by
// earlier MANIFESTs (replaced by a compaction or dropped by a Reset whose
// removal a crash interrupted: their first id is below the id floor or not
// above the last listed segment's, or their generation at most m's), the
// file of a compaction whose publication a crash interrupted (generation
// m's + 1), and the file of an interrupted roll (no frames: the magic
// alone). Anything else was published by a MANIFEST that followed m.
func classify(dir string, m *manifest, names []string) (orphans, beyond []string, err error) {
	listed := make(map[string]bool, len(m.Segments))
	for _, sg := range m.Segments {
		listed[sg.Name] = true
	}
	var tailFirst uint64
	if n := len(m.Segments); n > 0 {
		tailFirst = m.Segments[n-1].First
	}
	for _, name := range names {
		if listed[name] {
			continue
		}
		first, gen, _ := parseSegmentName(name)
		if gen > m.Generation+1 {
			beyond = append(beyond, name)
			continue
		}
		if (gen != 0 && gen <= m.Generation) || first < m.IDFloor || first <= tailFirst {
			orphans = append(orphans, name)
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("filestore: %w", err)
		}
		if fi.Size() <= magicLen {
			orphans = append(orphans, name)
		} else {
			beyond = append(beyond, name)
		}
	}
	return orphans, beyond, nil
}
