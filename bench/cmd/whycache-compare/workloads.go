package main

// workloadDef is one column of the report.
type workloadDef struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Unit  string `json:"unit"`
	// Lower is true when a lower figure is better (memory).
	Lower bool `json:"lower_is_better,omitempty"`
	// Rate is true for operations per second (charted on the log scale).
	Rate bool `json:"-"`
	// What explains the figure under the table.
	What string `json:"what"`
}

// Workload ids.
const (
	wGet     = "get"
	wGetHot  = "get-hot"
	wGet2    = "get-2proc"
	wWrites  = "get-writes"
	wLoad    = "load"
	wMemory  = "memory"
	hotCount = 1000
)

// workloadDefs are the report's columns, in order.
var workloadDefs = []workloadDef{
	{ID: wGet, Title: "Get, random", Unit: "ops/s", Rate: true,
		What: "one process, one goroutine: uniformly random Gets over all keys into a reused buffer; every key must be found with its 100-byte value"},
	{ID: wGetHot, Title: "Get, hot set", Unit: "ops/s", Rate: true,
		What: "as above over the first 1,000 keys only"},
	{ID: wGet2, Title: "Get, 2 processes", Unit: "ops/s", Rate: true,
		What: "two processes reading at once, reads/s added up; the shared systems' processes read one copy, the per-process ones each load and read their own"},
	{ID: wWrites, Title: "Get while writing", Unit: "ops/s", Rate: true,
		What: "random Gets of one process while random keys are overwritten at the write rate, by another process where the system allows one (else by a goroutine of the reading process)"},
	{ID: wLoad, Title: "Bulk load", Unit: "keys/s", Rate: true,
		What: "writing every key into an empty system in batches (one transaction, SetMulti, MSET or pipeline per batch), timed in one process"},
	{ID: wMemory, Title: "Memory", Unit: "B/key", Lower: true,
		What: "growth of the system's own measure during the bulk load, divided by the keys: whycache's state file, bbolt's and LMDB's data file, Redis INFO used_memory, memcached stats bytes, and the resident set of the loading process for the in-process maps"},
}

// workloadByID returns the definition of id.
func workloadByID(id string) workloadDef {
	for _, w := range workloadDefs {
		if w.ID == id {
			return w
		}
	}
	return workloadDef{ID: id, Title: id}
}
