package config

import (
	"fmt"
	"strings"
)

// readme renders README.md from the settings table, so the documentation
// cannot drift from the code (config_test.go compares the two).
func readme() string {
	var b strings.Builder
	b.WriteString(`# authd configuration

` + "`authd serve`" + ` reads every setting from a flag or from the environment; a flag
wins over its environment variable, which wins over the default. An
environment variable set to the empty string counts as unset. Boolean flags
take ` + "`--dev`" + ` or ` + "`--dev=false`" + `; booleans in the environment take true/false/1/0.
Values with control characters or longer than 4096 bytes are refused.

` + "`authd migrate`" + ` and ` + "`authd projections`" + ` read only ` + "`--database-url`" + ` and ` + "`--log-level`" + `.

| name | flag | env | default | meaning |
|---|---|---|---|---|
`)
	for _, s := range settings {
		flagName := "—"
		if s.Flag != "" {
			flagName = "`--" + s.Flag + "`"
		}
		def := s.DefaultDoc
		if def == "" {
			def = "`" + s.Default + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s |\n", s.Name, flagName, s.Env, def, s.Meaning)
	}
	b.WriteString(`
Rules checked at start (the process exits with status 2 and names the
setting, never a secret's value):

- Dev mode listens on loopback only: an empty host or ` + "`localhost`" + ` means
  ` + "`127.0.0.1`" + `; ` + "`0.0.0.0`" + `, ` + "`::`" + `, other names and non-loopback IPs are refused.
- Outside dev mode ` + "`--database-url`" + `, ` + "`--tls-cert-file`" + `, ` + "`--tls-key-file`" + ` and
  ` + "`--issuer`" + ` are required, and ` + "`STRONGROOM_DEV_ADMIN_SECRET`" + ` must not be set.
- The two listeners need different addresses (port 0 excepted).
- ` + "`--migrate-on-start`" + ` needs a database.
- The dev back-office secret, when given, is 16 to 256 printable ASCII
  characters. When generated, its file's path is logged, never the secret.
`)
	return b.String()
}
