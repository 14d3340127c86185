package cmdutil

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// DeprecatedUsagePrefix starts the usage of every deprecated flag alias.
const DeprecatedUsagePrefix = "deprecated: use --"

// AliasFlag keeps old as a hidden spelling of the flag name in fs. Using it
// sets name (so Changed(name) is true) and prints a one-line notice on
// errOut. Define name first.
func AliasFlag(fs *pflag.FlagSet, old, name string, errOut io.Writer) {
	f := fs.Lookup(name)
	if f == nil {
		panic("cmdutil.AliasFlag: no flag --" + name)
	}
	fs.AddFlag(&pflag.Flag{
		Name:        old,
		Usage:       DeprecatedUsagePrefix + name,
		Value:       &aliasValue{fs: fs, old: old, name: name, errOut: errOut},
		DefValue:    f.DefValue,
		NoOptDefVal: f.NoOptDefVal,
		Hidden:      true,
	})
}

type aliasValue struct {
	fs        *pflag.FlagSet
	old, name string
	errOut    io.Writer
}

func (a *aliasValue) Set(s string) error {
	if a.errOut != nil {
		fmt.Fprintf(a.errOut, "Flag --%s is deprecated: use --%s\n", a.old, a.name)
	}
	return a.fs.Set(a.name, s)
}

func (a *aliasValue) String() string { return a.fs.Lookup(a.name).Value.String() }

func (a *aliasValue) Type() string { return a.fs.Lookup(a.name).Value.Type() }
