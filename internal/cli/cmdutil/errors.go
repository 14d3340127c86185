package cmdutil

import "errors"

// ExitError carries a specific exit code out of a command.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ErrSilent makes a command exit non-zero without printing anything more: the command has
// already told the user what happened.
var ErrSilent = errors.New("silent")

// FlagErrorf wraps a usage problem so the root command prints usage help.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }
