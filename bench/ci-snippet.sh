# Lines for .ci/run: vet and the short tests of the separate bench module.
# The LMDB peer loads liblmdb at run time and its tests skip without it; the
# Redis and memcached peers skip when their servers are not installed. The
# full comparison (go run ./cmd/whycache-compare) is not part of CI.
(cd bench && go vet ./... && go test -short -race -timeout 10m ./...)
