package main

// The parent and a child talk in JSON lines (package proc). The child
// sends a ready message once it has opened (and, if it loads, loaded) its
// system; the parent then sends commands, each answered by one result;
// closing the child's stdin ends it.

// Operations of a command.
const (
	opRead  = "read"  // read for Seconds; with WriteRate > 0, write from a goroutine meanwhile
	opWrite = "write" // write until the next command (opStop) or EOF
	opStop  = "stop"  // ends an opWrite
)

// command is what the parent sends.
type command struct {
	Op         string  `json:"op"`
	Seconds    float64 `json:"seconds,omitempty"`
	Hot        int     `json:"hot,omitempty"`         // read only the first Hot keys (0: all)
	WriteRate  int     `json:"write_rate,omitempty"`  // keys/s
	WriteBatch int     `json:"write_batch,omitempty"` // keys per batch
	Seed       uint64  `json:"seed,omitempty"`
}

// reply is what a child sends: ready (after opening) or result (after a
// command).
type reply struct {
	Event string `json:"event"`

	// ready: the load, when the child did one.
	LoadSeconds    float64 `json:"load_seconds,omitempty"`
	LoadKeys       int     `json:"load_keys,omitempty"`
	FootprintBytes int64   `json:"footprint_bytes,omitempty"` // growth while loading

	// result.
	Reads        uint64  `json:"reads,omitempty"`
	ReadSeconds  float64 `json:"read_seconds,omitempty"`
	Writes       uint64  `json:"writes,omitempty"` // keys written
	WriteSeconds float64 `json:"write_seconds,omitempty"`
}

const (
	eventReady  = "ready"
	eventResult = "result"
)
