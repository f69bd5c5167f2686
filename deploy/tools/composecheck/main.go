// composecheck loads a compose file with compose-go, the library `docker compose` uses, and
// prints the resolved model: the same validation as `docker compose config` (schema, merge
// keys, interpolation, references between services), without a Docker daemon.
//
//	go run . ../../compose.yaml
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck COMPOSE_FILE")
		os.Exit(2)
	}
	path, _ := filepath.Abs(os.Args[1])
	opts, err := cli.NewProjectOptions([]string{path}, cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithName("ragd"), cli.WithOsEnv)
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(out)
	fmt.Fprintf(os.Stderr, "%s: valid (%d services)\n", os.Args[1], len(project.Services))
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
	os.Exit(1)
}
