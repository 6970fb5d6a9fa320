package whycache

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/whycache/whycache/logstore"
)

// fsManifestName is the MANIFEST file in a store directory.
const fsManifestName = "MANIFEST"

// fsManifestVersion is the MANIFEST format version this code writes and
// reads.
const fsManifestVersion = 1

// fsMaxManifestSize bounds how much of a MANIFEST is read.
const fsMaxManifestSize = 64 << 20

// fsSegment is one segment file listed in the MANIFEST. Its records have ids
// at or above First and below the next segment's First.
type fsSegment struct {
	Name  string `json:"name"`
	First uint64 `json:"first_id"`
}

// fsManifest is the decoded MANIFEST. A published manifest is never
// modified: a change publishes a new one (see fsPublishManifest), so a
// *fsManifest may be shared between goroutines without locking.
type fsManifest struct {
	Version int    `json:"version"`
	LogID   string `json:"log_id"` // hex of logstore.LogID
	Horizon uint64 `json:"horizon"`
	// IDFloor is the lowest id the next Commit may assign; it covers ids
	// whose records Compact dropped and the ids before a Reset. Ids of
	// committed records are the larger of IDFloor and the tail's last id + 1.
	IDFloor uint64 `json:"id_floor"`
	// Generation grows with every publication, across Resets; it makes the
	// names of rewritten segment files unique.
	Generation uint64      `json:"generation"`
	Segments   []fsSegment `json:"segments"`

	id logstore.LogID // decoded LogID
}

// fsDecodeManifest parses and validates a MANIFEST. Any defect is an error
// wrapping logstore.ErrCorrupt.
func fsDecodeManifest(data []byte) (*fsManifest, error) {
	var m fsManifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fsCorruptf("MANIFEST: %v", err)
	}
	if dec.More() {
		return nil, fsCorruptf("MANIFEST: data after the JSON object")
	}
	if m.Version != fsManifestVersion {
		return nil, fsCorruptf("MANIFEST: format version %d, want %d", m.Version, fsManifestVersion)
	}
	if len(m.LogID) != 2*len(m.id) {
		return nil, fsCorruptf("MANIFEST: log id %q is not %d hex digits", m.LogID, 2*len(m.id))
	}
	if _, err := hex.Decode(m.id[:], []byte(m.LogID)); err != nil || m.id == (logstore.LogID{}) {
		return nil, fsCorruptf("MANIFEST: bad log id %q", m.LogID)
	}
	if m.IDFloor == 0 {
		return nil, fsCorruptf("MANIFEST: id floor is 0")
	}
	seen := make(map[string]bool, len(m.Segments))
	for i, sg := range m.Segments {
		if !fsValidSegmentName(sg.Name) || seen[sg.Name] {
			return nil, fsCorruptf("MANIFEST: bad or repeated segment name %q", sg.Name)
		}
		seen[sg.Name] = true
		if sg.First == 0 || (i > 0 && sg.First <= m.Segments[i-1].First) {
			return nil, fsCorruptf("MANIFEST: segment %q: first id %d out of order", sg.Name, sg.First)
		}
	}
	return &m, nil
}

// fsValidSegmentName accepts the names fsSegmentName produces: digits and
// dots, ending in ".seg", so a MANIFEST cannot name a path outside the
// directory.
func fsValidSegmentName(name string) bool {
	base, ok := strings.CutSuffix(name, ".seg")
	if !ok || base == "" || len(base) > 64 {
		return false
	}
	for _, c := range base {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// fsSegmentName names a segment file whose records start at first. A
// segment made by rolling is "<first>.seg"; a rewritten one also carries
// the generation of the MANIFEST that publishes it: "<first>.<gen>.seg".
func fsSegmentName(first, generation uint64) string {
	if generation == 0 {
		return fmt.Sprintf("%020d.seg", first)
	}
	return fmt.Sprintf("%020d.%d.seg", first, generation)
}

// fsNewManifest returns the manifest of a new, empty log identity whose
// first id will be at least floor.
func fsNewManifest(floor, generation uint64) (*fsManifest, error) {
	m := &fsManifest{Version: fsManifestVersion, IDFloor: max(floor, 1), Generation: generation}
	for m.id == (logstore.LogID{}) {
		if _, err := rand.Read(m.id[:]); err != nil {
			return nil, fmt.Errorf("whycache: filestore: new log id: %w", err)
		}
	}
	m.LogID = hex.EncodeToString(m.id[:])
	return m, nil
}

// next returns a copy of m to be published as its successor (generation
// bumped, segment list copied).
func (m *fsManifest) next() *fsManifest {
	n := *m
	n.Generation++
	n.Segments = append([]fsSegment(nil), m.Segments...)
	return &n
}

// segmentFor returns the index of the segment that holds id: the last one
// whose First is at most id, or 0 when id is below every segment.
func (m *fsManifest) segmentFor(id uint64) int {
	i := 0
	for j, sg := range m.Segments {
		if sg.First <= id {
			i = j
		}
	}
	return i
}

// fsManifestCache holds the last MANIFEST read and the open file it was
// read from. Holding the file open keeps its inode alive, so a MANIFEST
// published since always has another inode: a stat of the path detects
// every change.
type fsManifestCache struct {
	m    *fsManifest
	f    *os.File // the MANIFEST inode m was read from
	dev  uint64
	ino  uint64
	path string
}

// fsFileID returns the device and inode numbers of fi.
func fsFileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}

// load returns the current MANIFEST, reading it only when the file changed.
// The caller serializes calls.
func (c *fsManifestCache) load() (*fsManifest, error) {
	fi, err := os.Stat(c.path)
	if err != nil {
		return nil, fmt.Errorf("whycache: filestore: %w", err)
	}
	if dev, ino := fsFileID(fi); c.m != nil && dev == c.dev && ino == c.ino && ino != 0 {
		return c.m, nil
	}
	f, err := os.Open(c.path)
	if err != nil {
		return nil, fmt.Errorf("whycache: filestore: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, fsMaxManifestSize+1))
	if err == nil && len(data) > fsMaxManifestSize {
		err = fsCorruptf("MANIFEST larger than %d bytes", fsMaxManifestSize)
	}
	var m *fsManifest
	if err == nil {
		m, err = fsDecodeManifest(data)
	}
	if err == nil {
		fi, err = f.Stat()
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("whycache: filestore: read %s: %w", c.path, err)
	}
	c.set(m, f, fi)
	return m, nil
}

// set replaces the cached manifest with m, read from (or written to) f.
func (c *fsManifestCache) set(m *fsManifest, f *os.File, fi os.FileInfo) {
	if c.f != nil {
		c.f.Close()
	}
	c.m, c.f = m, f
	c.dev, c.ino = fsFileID(fi)
}

// close releases the cached file.
func (c *fsManifestCache) close() error {
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f, c.m = nil, nil
	return err
}

// publish writes m as the new MANIFEST atomically (temporary file, fsync,
// rename, fsync of the directory) and caches it. The caller holds the
// writer lock, which every publication takes, so temporary MANIFEST files
// never race.
func (c *fsManifestCache) publish(m *fsManifest, mode os.FileMode, sync bool) error {
	data, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return fmt.Errorf("whycache: filestore: encode MANIFEST: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(c.path)
	f, err := fsWriteTemp(dir, fsManifestName+".tmp", mode, data, sync)
	if err != nil {
		return err
	}
	if err := fsRenameSync(f.Name(), c.path, sync); err != nil {
		f.Close()
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("whycache: filestore: %w", err)
	}
	c.set(m, f, fi)
	return nil
}

// fsWriteTemp creates dir/name (replacing a leftover one), writes data and
// syncs it when sync is set. It returns the open file.
func fsWriteTemp(dir, name string, mode os.FileMode, data []byte, sync bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return nil, fmt.Errorf("whycache: filestore: %w", err)
	}
	if _, err = f.Write(data); err == nil && sync {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("whycache: filestore: write %s: %w", f.Name(), err)
	}
	return f, nil
}

// fsRenameSync renames from to to and, when sync is set, syncs the
// directory so the rename survives a crash.
func fsRenameSync(from, to string, sync bool) error {
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("whycache: filestore: %w", err)
	}
	if !sync {
		return nil
	}
	return fsSyncDir(filepath.Dir(to))
}

// fsSyncDir fsyncs a directory.
func fsSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("whycache: filestore: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("whycache: filestore: sync %s: %w", dir, err)
	}
	return nil
}
