package main

import (
	"os"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// passwordEnv is the environment variable that carries the MySQL password,
// so that it appears neither on a command line (ps shows those to every
// user) nor in the DSN of --store.
const passwordEnv = "WHYCACHE_PASSWORD"

// maxPasswordFile bounds what --password-file reads.
const maxPasswordFile = 4096

// applyPassword sets the MySQL password of cfg from --password-file or
// $WHYCACHE_PASSWORD, when one is given. The password may come from one
// place only; a file readable by other users is refused.
func (e *env) applyPassword(cfg *mysql.Config) error {
	var pw string
	var from string
	if e.g.passwordFile != "" {
		var err error
		if pw, err = readSecretFile(e.g.passwordFile, "--password-file"); err != nil {
			return err
		}
		from = "--password-file"
	}
	if env := e.getenv(passwordEnv); env != "" {
		if from != "" {
			return usageErrorf("the MySQL password is given twice: by --password-file and by $%s", passwordEnv)
		}
		pw, from = env, "$"+passwordEnv
	}
	if from == "" {
		return nil
	}
	if cfg.Passwd != "" {
		return usageErrorf("the MySQL password is given twice: in --store and by %s", from)
	}
	cfg.Passwd = pw
	return nil
}

// readSecretFile reads a password from path, given by flagName: at most
// maxPasswordFile bytes, a trailing line break removed. A file readable
// by every user is refused.
func readSecretFile(path, flagName string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", wrap(err, "%s", flagName)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", wrap(err, "%s", flagName)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", usageErrorf("%s %s is readable by every user (mode %#o): chmod o-r %s", flagName, path, fi.Mode().Perm(), path)
	}
	buf := make([]byte, maxPasswordFile+1)
	n, _ := f.Read(buf)
	if n > maxPasswordFile {
		return "", usageErrorf("%s %s is longer than %d bytes", flagName, path, maxPasswordFile)
	}
	return strings.TrimRight(string(buf[:n]), "\r\n"), nil
}
