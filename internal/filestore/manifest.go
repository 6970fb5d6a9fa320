package filestore

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
	"strconv"
	"strings"
	"syscall"

	"github.com/whycache/whycache/logstore"
)

// manifestName is the MANIFEST file in a store directory.
const manifestName = "MANIFEST"

// MANIFEST format versions: version 2 (written) records the size and last
// position of segments; version 1 (still read) does not.
const (
	manifestVersion1 = 1
	manifestVersion  = 2
)

// maxManifestSize bounds how much of a MANIFEST is read.
const maxManifestSize = 64 << 20

// segment is one segment file listed in the MANIFEST. Its records have ids
// at or above First and below the next segment's First.
type segment struct {
	Name  string `json:"name"`
	First uint64 `json:"first_id"`
	// Size is the segment's size in bytes when the MANIFEST was published,
	// and LastID and LastNonce the position of its last batch within Size
	// (0 when it holds none). For a sealed segment (every one but the
	// last) that is its exact, final size; for the last one, the prefix
	// that was acknowledged when it was published (it only grows). Size is
	// 0 when unknown: for segments listed before MANIFEST version 2.
	Size      int64  `json:"size,omitempty"`
	LastID    uint64 `json:"last_id,omitempty"`
	LastNonce uint64 `json:"last_nonce,omitempty"`
}

// recorded returns the segment's recorded end as an ackedEnd.
func (sg segment) recorded() ackedEnd {
	return ackedEnd{end: sg.Size, lastID: sg.LastID, nonce: sg.LastNonce}
}

// manifest is the decoded MANIFEST. A published manifest is never
// modified: a change publishes a new one (see manifestCache.publish), so a
// *manifest may be shared between goroutines without locking.
type manifest struct {
	Version int    `json:"version"`
	LogID   string `json:"log_id"` // hex of logstore.LogID
	Horizon uint64 `json:"horizon"`
	// IDFloor is the lowest id the next Commit may assign; it covers ids
	// whose records Compact dropped and the ids before a Reset. Ids of
	// committed records are the larger of IDFloor and the tail's last id + 1.
	IDFloor uint64 `json:"id_floor"`
	// Generation grows with every publication, across Resets; it makes the
	// names of rewritten segment files unique and tells a MANIFEST that
	// follows another from one restored from a backup.
	Generation uint64 `json:"generation"`
	// Publication is a random number drawn for every publication, and
	// Previous the Publication of the MANIFEST this one replaced: a handle
	// that cached the predecessor knows the new one follows it, and treats
	// anything else (a restored MANIFEST, whatever its generation, or one
	// it skipped publications to reach) as a new epoch.
	Publication uint64    `json:"publication,omitempty"`
	Previous    uint64    `json:"previous,omitempty"`
	Segments    []segment `json:"segments"`

	id logstore.LogID // decoded LogID
	// epoch is the manifestCache epoch the manifest was read or
	// published in; positions remembered under another epoch are void.
	epoch uint64
}

// decodeManifest parses and validates a MANIFEST of version 1 or 2. Any
// defect is an error wrapping logstore.ErrCorrupt (see badManifest).
func decodeManifest(data []byte) (*manifest, error) {
	var m manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, badManifest("%v", err)
	}
	if dec.More() {
		return nil, badManifest("data after the JSON object")
	}
	if m.Version != manifestVersion && m.Version != manifestVersion1 {
		return nil, badManifest("format version %d, want %d or %d", m.Version, manifestVersion1, manifestVersion)
	}
	if len(m.LogID) != 2*len(m.id) {
		return nil, badManifest("log id %q is not %d hex digits", m.LogID, 2*len(m.id))
	}
	if _, err := hex.Decode(m.id[:], []byte(m.LogID)); err != nil || m.id == (logstore.LogID{}) {
		return nil, badManifest("bad log id %q", m.LogID)
	}
	if m.IDFloor == 0 {
		return nil, badManifest("id floor is 0")
	}
	seen := make(map[string]bool, len(m.Segments))
	for i, sg := range m.Segments {
		if _, _, ok := parseSegmentName(sg.Name); !ok || seen[sg.Name] {
			return nil, badManifest("bad or repeated segment name %q", sg.Name)
		}
		seen[sg.Name] = true
		if sg.First == 0 || (i > 0 && sg.First <= m.Segments[i-1].First) {
			return nil, badManifest("segment %q: first id %d out of order", sg.Name, sg.First)
		}
		if err := m.validateEnd(i); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// badManifest returns the error of a MANIFEST that fails validation,
// wrapping logstore.ErrCorrupt. It carries no package prefix: the reader
// adds it with the file's path.
func badManifest(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, logstore.ErrCorrupt)...)
}

// validateEnd checks the recorded size and last position of segment i.
func (m *manifest) validateEnd(i int) error {
	sg := m.Segments[i]
	if m.Version == manifestVersion1 && (sg.Size != 0 || sg.LastID != 0 || sg.LastNonce != 0) {
		return badManifest("segment %q: version 1 records no size", sg.Name)
	}
	switch {
	case sg.Size == 0 && (sg.LastID != 0 || sg.LastNonce != 0):
		return badManifest("segment %q: last id without a size", sg.Name)
	case sg.Size != 0 && sg.Size < magicLen:
		return badManifest("segment %q: size %d", sg.Name, sg.Size)
	case sg.LastID == 0 && sg.LastNonce != 0:
		return badManifest("segment %q: nonce without a last id", sg.Name)
	case sg.LastID != 0 && (sg.LastID < sg.First || (i+1 < len(m.Segments) && sg.LastID >= m.Segments[i+1].First)):
		return badManifest("segment %q: last id %d outside its range", sg.Name, sg.LastID)
	}
	return nil
}

// parseSegmentName parses the names segmentName produces: "<first>.seg"
// (generation 0) and "<first>.<generation>.seg", both numbers in decimal
// digits only, so a MANIFEST cannot name a path outside the directory.
func parseSegmentName(name string) (first, generation uint64, ok bool) {
	base, ok := strings.CutSuffix(name, ".seg")
	if !ok {
		return 0, 0, false
	}
	num := func(s string) (uint64, bool) {
		if s == "" || len(s) > 20 || strings.TrimLeft(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseUint(s, 10, 64)
		return n, err == nil
	}
	a, b, two := strings.Cut(base, ".")
	if first, ok = num(a); !ok || first == 0 {
		return 0, 0, false
	}
	if two {
		if generation, ok = num(b); !ok || generation == 0 {
			return 0, 0, false
		}
	}
	return first, generation, true
}

// segmentName names a segment file whose records start at first. A
// segment made by rolling is "<first>.seg"; a rewritten one also carries
// the generation of the MANIFEST that publishes it: "<first>.<gen>.seg".
func segmentName(first, generation uint64) string {
	if generation == 0 {
		return fmt.Sprintf("%020d.seg", first)
	}
	return fmt.Sprintf("%020d.%d.seg", first, generation)
}

// newManifest returns the manifest of a new, empty log identity whose
// first id will be at least floor.
func newManifest(floor, generation uint64) (*manifest, error) {
	m := &manifest{Version: manifestVersion, IDFloor: max(floor, 1), Generation: generation}
	for m.id == (logstore.LogID{}) {
		if _, err := rand.Read(m.id[:]); err != nil {
			return nil, fmt.Errorf("filestore: new log id: %w", err)
		}
	}
	m.LogID = hex.EncodeToString(m.id[:])
	return m, nil
}

// next returns a copy of m to be published as its successor (current
// version, generation bumped, segment list copied).
func (m *manifest) next() *manifest {
	n := *m
	n.Version = manifestVersion
	n.Generation++
	n.Previous, n.Publication = m.Publication, 0 // drawn by publish
	n.Segments = append([]segment(nil), m.Segments...)
	return &n
}

// segmentFor returns the index of the segment that holds id: the last one
// whose First is at most id, or 0 when id is below every segment.
func (m *manifest) segmentFor(id uint64) int {
	i := 0
	for j, sg := range m.Segments {
		if sg.First <= id {
			i = j
		}
	}
	return i
}

// isTail reports whether segment i is the one appended to (the last).
func (m *manifest) isTail(i int) bool { return i == len(m.Segments)-1 }

// segCheck returns what a scan of segment i verifies; ack is the
// acknowledged end of the tail segment known besides the MANIFEST's (the
// watermark's), loadAck rereads it (nil for writers).
func (m *manifest) segCheck(i int, ack ackedEnd, loadAck func() (ackedEnd, error)) scanCheck {
	sg := m.Segments[i]
	c := scanCheck{lo: sg.First}
	if !m.isTail(i) {
		c.hi = m.Segments[i+1].First
		c.sealed, c.end = true, sg.recorded()
		return c
	}
	c.ack, c.loadAck = sg.recorded(), loadAck
	if ack.end > c.ack.end {
		c.ack = ack
	}
	return c
}

// manifestCache holds the last MANIFEST read and the open file it was
// read from. Holding the file open keeps its inode alive, so a MANIFEST
// published since always has another inode; a MANIFEST rewritten in place
// (a backup copied over it) changes its ctime. A stat of the path detects
// both.
type manifestCache struct {
	m     *manifest
	f     *os.File // the MANIFEST inode m was read from
	key   fileKey
	path  string
	epoch uint64 // see manifest.epoch
}

// fileKey identifies a file's contents as far as a stat can: a change of
// inode, size or ctime means another file or new contents.
type fileKey struct {
	dev, ino uint64
	size     int64
	ctime    syscall.Timespec
}

// keyOf returns the key of fi.
func keyOf(fi os.FileInfo) fileKey {
	k := fileKey{size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino, k.ctime = uint64(st.Dev), st.Ino, st.Ctim
	}
	return k
}

// load returns the current MANIFEST, reading it only when the file changed.
// A MANIFEST that is not the direct successor of the cached one (restored
// from a backup or copied in by hand, whatever its generation, or reached
// by skipping publications) starts a new epoch, which voids every position
// the handle remembers and reopens its files, and has the directory
// checked against it (checkDir). A missing
// MANIFEST is logstore.ErrCorrupt when segment files remain, else
// logstore.ErrNoLog. The caller serializes calls.
func (c *manifestCache) load() (*manifest, error) {
	for attempt := 0; ; attempt++ {
		m, retry, err := c.loadOnce(attempt < 3)
		if !retry {
			return m, err
		}
	}
}

// loadOnce is one attempt of load. retry is set (only when mayRetry) when
// the directory check failed while the MANIFEST was replaced again, which
// a publication racing the check explains.
func (c *manifestCache) loadOnce(mayRetry bool) (m *manifest, retry bool, err error) {
	fi, err := os.Stat(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, missingManifest(filepath.Dir(c.path))
	}
	if err != nil {
		return nil, false, fmt.Errorf("filestore: %w", err)
	}
	if key := keyOf(fi); c.m != nil && key == c.key && key.ino != 0 {
		return c.m, false, nil
	}
	f, err := os.Open(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, missingManifest(filepath.Dir(c.path))
	}
	if err != nil {
		return nil, false, fmt.Errorf("filestore: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err == nil && len(data) > maxManifestSize {
		err = badManifest("larger than %d bytes", maxManifestSize)
	}
	if err == nil {
		m, err = decodeManifest(data)
	}
	if err == nil {
		fi, err = f.Stat()
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("filestore: read %s: %w", c.path, err)
	}
	if c.m != nil && !m.follows(c.m) {
		if err := checkDir(filepath.Dir(c.path), m); err != nil {
			f.Close()
			now, serr := os.Stat(c.path)
			return nil, mayRetry && serr == nil && !os.SameFile(now, fi), err
		}
		c.epoch++
	}
	m.epoch = c.epoch
	c.set(m, f, fi)
	return m, false, nil
}

// follows reports whether m was published directly over prev.
func (m *manifest) follows(prev *manifest) bool {
	return prev.Publication != 0 && m.Generation == prev.Generation+1 && m.Previous == prev.Publication
}

// set replaces the cached manifest with m, read from (or written to) f.
func (c *manifestCache) set(m *manifest, f *os.File, fi os.FileInfo) {
	if c.f != nil {
		c.f.Close()
	}
	c.m, c.f, c.key = m, f, keyOf(fi)
}

// close releases the cached file.
func (c *manifestCache) close() error {
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
func (c *manifestCache) publish(m *manifest, mode os.FileMode, sync bool) error {
	for m.Publication == 0 {
		pub, err := logstore.NewNonce()
		if err != nil {
			return err
		}
		m.Publication = pub
	}
	data, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return fmt.Errorf("filestore: encode MANIFEST: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(c.path)
	f, err := writeTemp(dir, manifestName+".tmp", mode, data, sync)
	if err != nil {
		return err
	}
	if err := renameSync(f.Name(), c.path, sync); err != nil {
		f.Close()
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("filestore: %w", err)
	}
	m.epoch = c.epoch
	c.set(m, f, fi)
	return nil
}

// writeTemp creates dir/name (replacing a leftover one), writes data and
// syncs it when sync is set. It returns the open file.
func writeTemp(dir, name string, mode os.FileMode, data []byte, sync bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if _, err = f.Write(data); err == nil && sync {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("filestore: write %s: %w", f.Name(), err)
	}
	return f, nil
}

// renameSync renames from to to and, when sync is set, syncs the
// directory so the rename survives a crash.
func renameSync(from, to string, sync bool) error {
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if !sync {
		return nil
	}
	return syncDir(filepath.Dir(to))
}

// syncDir fsyncs a directory.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("filestore: sync %s: %w", dir, err)
	}
	return nil
}
