package buyercmd

import (
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/cli/cmdutil"
)

func TestServeConfigSourceFlags(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "obol-system")
	for _, tc := range []struct {
		args    []string
		wantErr string
		check   func(*ServeOptions) bool
	}{
		{args: []string{"--state", "s"}, wantErr: "--config-dir or --config-map is required"},
		{args: []string{"--state", "s", "--config-dir", "d", "--config-map", "m"}, wantErr: "give one"},
		{args: []string{"--state", "s", "--config-map", "m", "--config-namespace", ""}, wantErr: "needs --config-namespace"},
		{args: []string{"--state", "s", "--config-map", "obol-buyer-upstreams"},
			check: func(o *ServeOptions) bool {
				return o.ConfigMap == "obol-buyer-upstreams" && o.ConfigNamespace == "obol-system" && o.ConfigDir == ""
			}},
		{args: []string{"--state", "s", "--config-dir", "/etc/obol/buyer"},
			check: func(o *ServeOptions) bool { return o.ConfigDir == "/etc/obol/buyer" && o.ConfigMap == "" }},
	} {
		f, _ := cmdutil.NewTestFactory()
		var got *ServeOptions
		cmd := NewCmdServe(f, func(o *ServeOptions) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err = %v, want %q", tc.args, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case !tc.check(got):
			t.Errorf("%v: options %+v", tc.args, got)
		}
	}
}
