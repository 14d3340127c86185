package root

import (
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/obolstack/obol/internal/cli/cmdutil"
)

// flagVocabulary names each thing once, in the words of `obol sell` and the
// custom resources. A command may keep an old spelling only as a hidden,
// deprecated alias (cmdutil.AliasFlag).
var flagVocabulary = map[string][]string{
	// the chain a payment is on (name or CAIP-2 id)
	"chain": {"network", "chain-name"},
	// the token contract and what describes it
	"asset":          {"token", "token-address", "asset-address"},
	"asset-symbol":   {"token-symbol", "symbol"},
	"asset-decimals": {"token-decimals", "decimals"},
	"eip712-name":    {"token-name", "domain-name"},
	"eip712-version": {"token-version", "domain-version"},
	// the address that receives payments
	"pay-to": {"payto", "wallet", "recipient"},
	// the stack file of a running `obol dev`
	"dev-stack": {"stack-file", "dev-stack-file"},
	// keystore passphrases
	"passphrase-env":  {"key-passphrase-env", "password-env"},
	"passphrase-file": {"key-passphrase-file", "password-file"},
}

func walk(c *cobra.Command, visit func(*cobra.Command)) {
	visit(c)
	for _, sub := range c.Commands() {
		walk(sub, visit)
	}
}

// Every command speaks one vocabulary: a visible flag that is a synonym of a
// name in flagVocabulary fails, and every hidden flag is a deprecated alias
// of a visible flag of the same command.
func TestFlagsAgreeAcrossCommands(t *testing.T) {
	synonym := map[string]string{}
	for name, syns := range flagVocabulary {
		for _, s := range syns {
			synonym[s] = name
		}
	}
	f, _ := cmdutil.NewTestFactory()
	var aliases []string
	walk(NewCmdRoot(f), func(c *cobra.Command) {
		c.Flags().VisitAll(func(fl *pflag.Flag) {
			if fl.Hidden {
				target, ok := strings.CutPrefix(fl.Usage, cmdutil.DeprecatedUsagePrefix)
				if !ok {
					t.Errorf("%s --%s is hidden but not a deprecated alias", c.CommandPath(), fl.Name)
				} else if tf := c.Flags().Lookup(target); tf == nil || tf.Hidden {
					t.Errorf("%s --%s is an alias of --%s, which the command does not show", c.CommandPath(), fl.Name, target)
				}
				aliases = append(aliases, c.CommandPath()+" --"+fl.Name+" → --"+target)
				return
			}
			if want, ok := synonym[fl.Name]; ok {
				t.Errorf("%s --%s: the flag for this is --%s (keep --%s only as a hidden alias: cmdutil.AliasFlag)", c.CommandPath(), fl.Name, want, fl.Name)
			}
		})
	})
	sort.Strings(aliases)
	t.Logf("deprecated aliases:\n%s", strings.Join(aliases, "\n"))
}
