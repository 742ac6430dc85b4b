// Command authd is Strongroom's authentication server.
//
//	authd serve [flags]                    run the server (see internal/config/README.md)
//	authd migrate [flags]                  apply database migrations
//	authd projections rebuild NAME [flags] rebuild one read model from the event log
//	authd projections status [flags]       show every projection's position
//	authd version                          print the version
//
// Logs are JSON lines on stdout. Exit status: 0 success, 1 failure, 2 bad
// usage or configuration.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Usage:
  authd serve [flags]                     run the server
  authd migrate [flags]                   apply database migrations
  authd projections rebuild NAME [flags]  rebuild one read model from the event log
  authd projections status [flags]        show every projection's position
  authd version                           print the version

Run "authd serve -h" for the server's flags and environment variables.
migrate and projections take --database-url (DATABASE_URL) and --log-level.
`

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling: a second
		// Ctrl-C kills at once instead of waiting for the drain.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: tests call it with their own context
// (cancelled instead of signalled), environment and outputs.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serveCommand(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return migrateCommand(ctx, rest, getenv, stdout, stderr)
	case "projections":
		return projectionsCommand(ctx, rest, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "authd: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}
