# Lines for .ci/run (after the MariaDB section, which exports
# WHYCACHE_TEST_DSN): vet and the short tests of the separate bench module.
# The peers' servers and library are installed when missing so that their
# tests run instead of skipping; the full comparison
# (go run ./cmd/whycache-compare) is not part of CI.
section "bench module"
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v memcached >/dev/null 2>&1 || missing="$missing memcached"
[ -e /usr/include/lmdb.h ] || missing="$missing liblmdb-dev"
if [ -n "$missing" ]; then
	apt-get update
	apt-get install -y $missing
fi
(cd bench && go vet ./... && go test -short -race -timeout 10m ./...)
